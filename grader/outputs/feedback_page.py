"""feedback.html: one self-contained page a student can read on a phone.

Every figure captioned in words beside the reference's (:mod:`grader.outputs.figures`);
answers rendered from a safe subset of markdown; a submission that could not be loaded said
once at the top. Everything that comes from a submission (messages quoting its errors, its
answers, its output, its name) is HTML-escaped, and the page carries a
Content-Security-Policy that allows no script and no remote content: its images are inline
``data:`` PNGs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from grader.check.results import GradeReport, format_points
from grader.outputs.figures import escape, figures_html
from grader.points import task_spec
from grader.probe.records import Record

LOAD_ERROR_LEAD = "We could not load your submission"

_FENCE = re.compile(r"^\s{0,3}(```|~~~)")
_LIST_ITEM = re.compile(r"^\s{0,3}(?:([-*+])|\d{1,9}[.)])\s+(.*)$")
_CODE_SPAN = re.compile(r"(`[^`\n]+`)")
_STRONG = re.compile(r"\*\*(?=\S)([^*<]+?)(?<=\S)\*\*")
_EM_STAR = re.compile(r"(?<![\w*])\*(?=[^\s*])([^*<]+?)(?<=[^\s*])\*(?![\w*])")
_EM_UNDERSCORE = re.compile(r"(?<![\w_])_(?=[^\s_])([^_<]+?)(?<=[^\s_])_(?![\w_])")


def _inline(text: str) -> str:
    """Escaped ``text`` with `code`, **strong** and *emphasis* (or _emphasis_) rendered."""
    out = []
    for i, part in enumerate(_CODE_SPAN.split(text)):
        if i % 2:
            out.append(f"<code>{escape(part[1:-1])}</code>")
            continue
        escaped = _STRONG.sub(r"<strong>\1</strong>", escape(part))
        escaped = _EM_STAR.sub(r"<em>\1</em>", escaped)
        out.append(_EM_UNDERSCORE.sub(r"<em>\1</em>", escaped))
    return "".join(out)


def markdown_html(text: str) -> str:
    """A student's markdown answer as HTML that can hold nothing of the student's but text.

    Everything is escaped first; then a small subset is rendered: paragraphs (blank
    lines), line breaks, lists (``-``, ``*``, ``+``, ``1.``), fenced code, ```code```,
    ``**strong**``, ``*emphasis*``. Raw HTML, links and images stay text.
    """
    blocks: list[str] = []
    paragraph: list[str] = []
    items: list[str] = []
    list_tag = "ul"
    code: list[str] | None = None

    def flush() -> None:
        if paragraph:
            blocks.append("<p>" + "<br>".join(paragraph) + "</p>")
            paragraph.clear()
        if items:
            blocks.append(f"<{list_tag}>" + "".join(f"<li>{x}</li>" for x in items)
                          + f"</{list_tag}>")
            items.clear()

    for line in text.splitlines():
        if code is not None:
            if _FENCE.match(line):
                blocks.append("<pre><code>" + escape("\n".join(code)) + "</code></pre>")
                code = None
            else:
                code.append(line)
        elif _FENCE.match(line):
            flush()
            code = []
        elif not line.strip():
            flush()
        elif item := _LIST_ITEM.match(line):
            tag = "ul" if item.group(1) else "ol"
            if paragraph or tag != list_tag:
                flush()
            list_tag = tag
            items.append(_inline(item.group(2).strip()))
        elif items and line[:1].isspace():
            items[-1] += "<br>" + _inline(line.strip())  # a list item's next line
        else:
            if items:
                flush()
            paragraph.append(_inline(line.strip()))
    if code is not None:  # an unclosed fence: the rest is code
        blocks.append("<pre><code>" + escape("\n".join(code)) + "</code></pre>")
    flush()
    return "\n".join(blocks)


# --------------------------------------------------------------------------- page

_CSS = """
*,::before,::after{box-sizing:border-box}
body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;padding:1em;max-width:1100px;color:#222;
overflow-wrap:break-word}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ccc}
h3{font-size:1em}
.scroll{max-width:100%;overflow-x:auto}
table{border-collapse:collapse}td,th{padding:.25em .6em;border-bottom:1px solid #eee;
text-align:left;vertical-align:top}th,.pts{white-space:nowrap}.msg{overflow-wrap:anywhere}
.ok{color:#1a7f37}.bad{color:#b42318}.part{color:#9a6700}
.pair{display:flex;gap:1em;flex-wrap:wrap;align-items:flex-start}
.fig{flex:0 1 auto;min-width:0;max-width:100%;margin:.5em 0}
.fig img{display:block;max-width:100%;height:auto;border:1px solid #ddd}
.fig:target{flex-basis:100%;overflow-x:auto;outline:2px solid #0969da;outline-offset:4px}
.fig:target img{max-width:none}
.fig .fit,.fig:target .full{display:none}.fig:target .fit{display:inline}
figcaption{font-size:.9em;max-width:40em}figcaption a{margin-left:.5em;white-space:nowrap}
.standin{display:block;color:#9a6700}
.missing{padding:2em;border:1px dashed #bbb}
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f6f8fa;padding:.8em;
max-height:30em;overflow:auto}
code{background:#f6f8fa;padding:0 .2em}pre code{padding:0}
.answer{border-left:3px solid #ddd;padding-left:.8em}
.note{background:#fff8c5;padding:.5em .8em}
.load-error{background:#ffebe9;border:1px solid #b42318;padding:.6em .9em}
.hidden,.hint{font-size:.85em;color:#666}
"""


def feedback_html(
    report: GradeReport,
    *,
    student: dict[str, Record | None],
    reference: dict[str, Record],
    problems: Iterable[str] = (),
    log: str = "",
    load_error: str | None = None,
) -> str:
    """One self-contained page for the student (see the module docstring).

    ``load_error``: why the submission could not be loaded at all; said once at the
    top, and left out of the notes and check rows that would only repeat it.
    """
    standin = report.weights.get("kind") == "standin"

    def repeats(message: str) -> bool:
        return load_error is not None and load_error in message

    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "img-src data:; style-src 'unsafe-inline'\">",
        f"<title>lab3 feedback: {escape(report.submission)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Laboratory 3 — feedback for {escape(report.submission)}</h1>",
    ]
    if load_error is not None:
        out.append(f'<p class="load-error" role="alert"><strong>{escape(LOAD_ERROR_LEAD)}:</strong> '
                   f"{escape(load_error)}</p>")
    out += [
        f"<p><strong>{_points(report.score, report.max_score, ' / ')} points</strong></p>",
        f"<p class=\"hidden\">{escape(report.weights.get('id', ''))} weights · "
        f"{escape(report.reference_records)} · graded in {report.execution_time:.1f} s</p>",
    ]
    if standin:
        out.append('<p class="note">Graded with stand-in weights (random, the same on every '
                   "machine), not the ImageNet-trained ones: predictions are not ImageNet "
                   "classes. Your figures and the reference's use the same weights: compare "
                   "them with each other.</p>")
    for note in [*report.notes, *problems]:
        if not repeats(note):
            out.append(f'<p class="note">{escape(note)}</p>')
    out.append('<div class="scroll"><table><tr><th>task</th><th>points</th>'
               "<th>first problem</th></tr>")
    for task in report.tasks:
        spec = task_spec(task.task)
        first = next((f"{c.name}: {c.message}" for c in task.checks
                      if not c.passed and not repeats(c.message)), "")
        out.append(
            f'<tr><td><a href="#{escape(task.task)}">{escape(spec.title)}</a></td>'
            f'<td class="pts {_cls(task.score, task.max_score)}">'
            f'{_points(task.score, task.max_score)}</td><td class="msg">{escape(first)}</td></tr>')
    out.append(f"<tr><th>total</th><th>{_points(report.score, report.max_score)}</th><th></th>"
               "</tr></table></div>")
    for task in report.tasks:
        spec = task_spec(task.task)
        out.append(f'<h2 id="{escape(task.task)}">{escape(spec.title)} — '
                   f'{_points(task.score, task.max_score)}</h2><div class="scroll"><table>')
        for check in task.checks:
            hidden = (' <span class="hidden">(hidden check, shown after grades are '
                      "published)</span>") if check.hidden else ""
            message = "" if repeats(check.message) else check.message
            out.append(
                f"<tr><td>{escape(check.name)}{hidden}</td>"
                f'<td class="pts {_cls(check.score, check.max_score, check.passed)}">'
                f'{_points(check.score, check.max_score)}</td><td class="msg">{escape(message)}</td>'
                "</tr>")
        out.append("</table></div>")
        out.extend(figures_html(task.task, student.get(task.task), reference.get(task.task),
                            standin))
    if report.answers:
        out.append('<h2 id="answers-text">Your answers (graded by hand)</h2>')
        for question, answer in report.answers.items():
            body = markdown_html(answer) if answer.strip() else "<p><em>(no answer)</em></p>"
            out.append(f'<h3>{escape(question)}</h3><div class="answer">{body}</div>')
    if log.strip():
        out.append("<h2>Output of your code while it was graded</h2>"
                   f"<details><summary>show</summary><pre>{escape(log)}</pre></details>")
    out.append("</body></html>")
    return "\n".join(out)


def _points(score: float, max_score: float, between: str = "/") -> str:
    return f"{format_points(score)}{between}{format_points(max_score)}"


def _cls(score: float, max_score: float, passed: bool | None = None) -> str:
    if passed is True or (passed is None and score >= max_score):
        return "ok"
    return "part" if score > 0 else "bad"

