"""The feedback page (``grades/<name>/feedback.html``) as a student reads it.

Plain tests read the HTML: figure captions in words, the student's answers escaped
and rendered from a small markdown subset, a submission that could not be loaded
said once. Browser tests open four real pages in headless Chromium (Debian's
``/usr/bin/chromium`` through Playwright): the reference, the template (all
zeros), a template with some of the reference's modules copied in, and a corrupt
zip; on each: no console error, no failed request, every image loaded, no
horizontal scroll in a 400 px wide window.

The pages are written by :func:`grader.outputs.report.write_submission` (what ``lab3
grade`` calls) from records probed in this process, except the corrupt zip's,
which goes through :func:`grader.run.batch.grade_batch` because the load error is the
batch's to report. The three probed pages take a few seconds each to grade
(marked slow); the corrupt zip's is fast.
"""

from __future__ import annotations

import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from grader.check.checking import CheckContext
from grader.check.grading import grade_records, probe_all
from grader.check.results import GradeReport, TaskResult, format_points
from grader.outputs.feedback_page import LOAD_ERROR_LEAD, feedback_html, markdown_html
from grader.outputs.figures import STANDIN_NOTE, figure_caption
from grader.outputs.report import FEEDBACK_FILE, write_submission
from grader.points import checks_of
from grader.probe.implementation import load_implementation
from grader.probe.inputs import FIXTURES_DIR
from grader.probe.probing import ProbeContext
from grader.probe.records import Record
from grader.refdata.weights import ResolvedWeights
from grader.settings import DEFAULT_SETTINGS
from grader.tasks import TASK_NAMES

REPO = Path(__file__).resolve().parents[3]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
# The partly solved submission: the template with these modules of the reference.
PARTIAL_MODULES = ("model.py", "preprocessing.py", "attribution_viz.py")
CORRUPT_TASKS = ("model", "preprocessing", "answers")
NARROW = {"width": 400, "height": 800}
DESKTOP = {"width": 1280, "height": 900}


# --------------------------------------------------------------------------- reading HTML


class _Elements(HTMLParser):
    """Every element of a page in document order: its tag, attributes, the text inside
    it, and the indices of the elements it is inside (outermost first)."""

    VOID = frozenset({"meta", "img", "br", "hr", "input", "link"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[dict[str, Any]] = []
        self._open: list[int] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append({"tag": tag, "attrs": dict(attrs), "text": "",
                              "inside": list(self._open)})
        if tag not in self.VOID:
            self._open.append(len(self.elements) - 1)

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self._open) - 1, -1, -1):
            if self.elements[self._open[depth]]["tag"] == tag:
                del self._open[depth:]
                break

    def handle_data(self, data: str) -> None:
        for index in self._open:
            self.elements[index]["text"] += data


def elements(page: str) -> list[dict[str, Any]]:
    parser = _Elements()
    parser.feed(page)
    return parser.elements


def classed(page: list[dict[str, Any]], tag: str, cls: str) -> list[int]:
    """Indices of the ``tag`` elements with class ``cls``."""
    return [i for i, e in enumerate(page)
            if e["tag"] == tag and cls in (e["attrs"].get("class") or "").split()]


def figcaptions(page: str) -> list[str]:
    return [" ".join(e["text"].split()) for e in elements(page) if e["tag"] == "figcaption"]


def answer_blocks(page: str) -> list[dict[str, Any]]:
    parsed = elements(page)
    return [parsed[i] for i in classed(parsed, "div", "answer")]


def table_rows(page: str) -> list[list[str]]:
    """The text of each table row's cells."""
    parsed = elements(page)
    rows: dict[int, list[str]] = {i: [] for i, e in enumerate(parsed) if e["tag"] == "tr"}
    for e in parsed:
        if e["tag"] in ("td", "th") and e["inside"] and e["inside"][-1] in rows:
            rows[e["inside"][-1]].append(" ".join(e["text"].split()))
    return list(rows.values())


# --------------------------------------------------------------------------- plain pages


def bare_report(weights_kind: str = "standin",
                answers: dict[str, str] | None = None) -> GradeReport:
    """A report with every task and no check run: what the page shows beside the checks."""
    return GradeReport(
        submission="student", tasks=[TaskResult(task=t) for t in TASK_NAMES],
        weights={"id": f"{weights_kind}-test", "kind": weights_kind}, versions={},
        settings={}, reference_records="test records", answers=dict(answers or {}))


@pytest.fixture(scope="module")
def references(reference_records: dict[str, Record]) -> dict[str, Record]:
    """The reference's records of every task as a plain dict (the session fixture may
    probe a task on first use, which ``dict.get`` would not trigger)."""
    return {task: reference_records[task] for task in TASK_NAMES}


@pytest.fixture(scope="module")
def reference_as_student_page(references: dict[str, Record]) -> str:
    """A page with the reference's records on both sides (every figure present)."""
    return feedback_html(bare_report(), student=references, reference=references)


def test_page_declares_a_viewport() -> None:
    page = feedback_html(bare_report(), student={}, reference={})
    viewports = [e["attrs"] for e in elements(page)
                 if e["tag"] == "meta" and e["attrs"].get("name") == "viewport"]
    assert viewports == [{"name": "viewport", "content": "width=device-width, initial-scale=1"}]


def test_every_recorded_png_has_a_caption(references: dict[str, Record]) -> None:
    pngs = [(task, name) for task, record in references.items() for name in record.tensors
            if name.endswith("_png")]
    assert pngs
    assert [p for p in pngs if figure_caption(*p, "yours", references[p[0]]) is None] == []


@pytest.mark.parametrize("caption", [
    "Task 4: your graph of the model (render_model_graph), reduced",
    "Task 4: the reference's graph of the model (render_model_graph), reduced",
    "Task 5: your grid of filter visualisations (plot_filter_grid)",
    "Task 5: the reference's grid of filter visualisations (plot_filter_grid)",
    "Task 7: your grid of attribution methods x signs (visualize_attribution_grid)",
    "Task 7: the reference's grid of attribution methods x signs (visualize_attribution_grid)",
    "Task 9: your comparison of attribution algorithms (plot_comparison)",
    "Task 9: the reference's comparison of attribution algorithms (plot_comparison)",
])
def test_figure_has_a_caption_in_words(reference_as_student_page: str, caption: str) -> None:
    assert any(c.startswith(caption) for c in figcaptions(reference_as_student_page))


@pytest.mark.parametrize("whose", ["your", "the reference's"])
def test_filter_figures_name_their_layer_and_filter(
    reference_as_student_page: str, references: dict[str, Record], whose: str
) -> None:
    cases = references["filters"].data["cases"]
    for case in cases.values():
        caption = (f"Task 5: {whose} visualisation of filter {case['filter']} of "
                   f"{case['layer']} (visualize_filter)")
        assert any(c.startswith(caption) for c in figcaptions(reference_as_student_page))


@pytest.mark.parametrize("caption", [
    "Task 6: Integrated Gradients from a constant baseline: left to right |yours|",
    "Task 6: Integrated Gradients with the default baseline (baselines=None): left to right",
    "Task 8: NoiseTunnel with nt_type='smoothgrad': left to right |yours|",
    "Task 8: NoiseTunnel with stdevs=0 (the same as plain Integrated Gradients): left to right",
])
def test_difference_map_has_a_caption_in_words(reference_as_student_page: str,
                                               caption: str) -> None:
    assert any(c.startswith(caption) for c in figcaptions(reference_as_student_page))


def test_every_attribution_map_has_a_caption(references: dict[str, Record]) -> None:
    # Task 6 records each call's map as "<call>_attr", Task 8 as "<call>".
    maps = [("integrated_gradients", n) for n in references["integrated_gradients"].tensors
            if n.endswith("_attr")]
    maps += [("noise_tunnel", n) for n in references["noise_tunnel"].data["arguments"]
             if n in references["noise_tunnel"].tensors]
    assert {task for task, _ in maps} == {"integrated_gradients", "noise_tunnel"}
    assert [m for m in maps if figure_caption(*m, "yours") is None] == []


def test_no_caption_shows_a_record_name(reference_as_student_page: str,
                                        references: dict[str, Record]) -> None:
    # Storage names (grid_png, conv1_f3_image, main_attr, ...), not API words such as
    # nt_type='smoothgrad_sq' that a caption may quote.
    names = {n for record in references.values() for n in record.tensors
             if re.search(r"_(png|image|attr|thumbnail|ax\d+)", n)}
    assert names
    for caption in figcaptions(reference_as_student_page):
        assert re.match(r"Task \d: \S", caption), caption
        assert not set(re.findall(r"[\w.]+", caption)) & names, caption


@pytest.mark.parametrize(("kind", "says_standin"), [("standin", True), ("pretrained", False)])
def test_every_caption_says_when_the_weights_are_the_stand_in(
    references: dict[str, Record], kind: str, says_standin: bool
) -> None:
    page = feedback_html(bare_report(kind), student=references, reference=references)
    captions = figcaptions(page)
    assert captions
    assert [STANDIN_NOTE in c for c in captions] == [says_standin] * len(captions)


def test_every_figure_links_to_itself_at_full_size(reference_as_student_page: str) -> None:
    page = elements(reference_as_student_page)
    figures = classed(page, "figure", "fig")
    assert figures
    for index in figures:
        zooms = [page[i] for i in classed(page, "a", "zoom") if index in page[i]["inside"]]
        assert [z["attrs"]["href"] for z in zooms] == ["#" + page[index]["attrs"]["id"]]


def test_no_image_is_pixelated(reference_as_student_page: str) -> None:
    assert "pixelated" not in reference_as_student_page
    assert "crisp-edges" not in reference_as_student_page


# --------------------------------------------------------------------------- answers

HOSTILE_ANSWERS = [
    # (answer, what the student must see as text)
    ('<script>alert("pwned")</script>', '<script>alert("pwned")</script>'),
    ("<img src=x onerror=alert(1)>", "<img src=x onerror=alert(1)>"),
    ("[click me](javascript:alert(1))", "[click me](javascript:alert(1))"),
    ('<a href="javascript:alert(1)">click me</a>', '<a href="javascript:alert(1)">click me</a>'),
    ("**<b onmouseover=alert(1)>bold</b>**", "<b onmouseover=alert(1)>bold</b>"),
    ("*<svg onload=alert(1)>*", "<svg onload=alert(1)>"),
    ("`<script>alert(1)</script>`", "<script>alert(1)</script>"),
    ("</div></h3><script>alert(1)</script>", "</div></h3><script>alert(1)</script>"),
    ("```\n<iframe src=javascript:alert(1)>\n```", "<iframe src=javascript:alert(1)>"),
    ("- <style>body{display:none}</style>", "<style>body{display:none}</style>"),
]
ANSWER_TAGS = {"p", "br", "em", "strong", "code", "pre", "ul", "ol", "li"}


@pytest.fixture(params=HOSTILE_ANSWERS, ids=lambda p: p[0][:24])
def hostile_page(request: pytest.FixtureRequest) -> tuple[str, str]:
    answer, shown = request.param
    page = feedback_html(bare_report(answers={"Task 7: signs": answer}), student={},
                         reference={})
    return page, shown


def test_hostile_answer_is_shown_as_text(hostile_page: tuple[str, str]) -> None:
    page, shown = hostile_page
    (block,) = answer_blocks(page)
    assert shown in block["text"]


def test_hostile_answer_adds_no_markup_but_the_markdown_subset(
    hostile_page: tuple[str, str]
) -> None:
    page = elements(hostile_page[0])
    (answer,) = classed(page, "div", "answer")
    inside = [e for e in page if answer in e["inside"]]
    assert {e["tag"] for e in inside} <= ANSWER_TAGS
    assert all(e["attrs"] == {} for e in inside)


def test_hostile_answer_adds_no_active_content(hostile_page: tuple[str, str]) -> None:
    page = elements(hostile_page[0])
    assert not {e["tag"] for e in page} & {"script", "iframe", "svg", "object", "embed"}
    assert [page[e["inside"][-1]]["tag"] for e in page if e["tag"] == "style"] == ["head"]
    for element in page:
        assert not any(name.startswith("on") for name in element["attrs"]), element
        assert not any("javascript:" in (v or "") for v in element["attrs"].values()), element


@pytest.mark.parametrize(("markdown", "rendered"), [
    ("one\n\ntwo", "<p>one</p>\n<p>two</p>"),
    ("line one\nline two", "<p>line one<br>line two</p>"),
    ("- a\n- b\n\nafter", "<ul><li>a</li><li>b</li></ul>\n<p>after</p>"),
    ("1. a\n2. b", "<ol><li>a</li><li>b</li></ol>"),
    ("text\n- item", "<p>text</p>\n<ul><li>item</li></ul>"),
    ("- item\n  continued", "<ul><li>item<br>continued</li></ul>"),
    ("**bold**, *em* and _em_", "<p><strong>bold</strong>, <em>em</em> and <em>em</em></p>"),
    ("`x < y` & `*not em*`", "<p><code>x &lt; y</code> &amp; <code>*not em*</code></p>"),
    ("snake_case_name, 2*3*4 and a * b", "<p>snake_case_name, 2*3*4 and a * b</p>"),
    ("```\nif a < b:\n\n    pass\n```", "<pre><code>if a &lt; b:\n\n    pass</code></pre>"),
    ("'quoted' \"text\"", "<p>&#x27;quoted&#x27; &quot;text&quot;</p>"),
    ("", ""),
])
def test_markdown_subset(markdown: str, rendered: str) -> None:
    assert markdown_html(markdown) == rendered


def test_empty_answer_says_so() -> None:
    page = feedback_html(bare_report(answers={"Task 5.1": "  \n"}), student={}, reference={})
    (block,) = answer_blocks(page)
    assert block["text"] == "(no answer)"


# --------------------------------------------------------------------------- a corrupt zip


@pytest.fixture(scope="module")
def corrupt_zip_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``lab3 grade`` of a file that is not a zip (no child process is started for it)."""
    from grader.run.batch import grade_batch

    root = tmp_path_factory.mktemp("corrupt")
    (root / "corrupt.zip").write_bytes(b"this is not a zip file")
    out = root / "grades"
    result = grade_batch([str(root / "corrupt.zip")], out=out, sandbox_mode="none",
                         tasks=CORRUPT_TASKS, variant="practice", quiet=True)
    assert [e["status"] for e in result.entries] == ["ungradable"]
    return out / "corrupt"


@pytest.fixture(scope="module")
def corrupt_zip_page(corrupt_zip_out: Path) -> str:
    return (corrupt_zip_out / FEEDBACK_FILE).read_text()


@pytest.fixture(scope="module")
def load_error(corrupt_zip_out: Path) -> str:
    import json

    (problem,) = json.loads((corrupt_zip_out / "report.json").read_text())["problems"]
    assert "not a valid zip" in problem
    return problem


def test_load_error_is_said_once(corrupt_zip_page: str, load_error: str) -> None:
    text = "".join(e["text"] for e in elements(corrupt_zip_page) if e["tag"] == "body")
    assert text.count(load_error) == 1


def test_load_error_leads_the_page(corrupt_zip_page: str, load_error: str) -> None:
    page = elements(corrupt_zip_page)
    first_table = next(i for i, e in enumerate(page) if e["tag"] == "table")
    (alert,) = [i for i, e in enumerate(page) if e["attrs"].get("class") == "load-error"]
    assert alert < first_table
    assert page[alert]["text"] == f"{LOAD_ERROR_LEAD}: {load_error}"


def test_load_error_page_lists_every_check_at_0(corrupt_zip_page: str) -> None:
    rows = {re.sub(r" \(hidden check.*", "", cells[0]): cells[1:]
            for cells in table_rows(corrupt_zip_page) if len(cells) == 3}
    for task in CORRUPT_TASKS:
        for check in checks_of(task):
            assert rows[check.name] == [f"0/{format_points(check.points)}", ""], check.name


# --------------------------------------------------------------------------- pages in a browser


class Pages:
    """The four feedback pages, each written on first use as ``lab3 grade`` writes it."""

    def __init__(self, root: Path, reference: dict[str, Record], weights: ResolvedWeights,
                 check_context: CheckContext, corrupt: Callable[[], Path]) -> None:
        self.root, self.reference, self.weights = root, reference, weights
        self.check_context, self.corrupt = check_context, corrupt
        self._paths: dict[str, Path] = {}

    def path(self, name: str) -> Path:
        if name not in self._paths:
            self._paths[name] = self._write(name)
        return self._paths[name]

    def _write(self, name: str) -> Path:
        if name == "corrupt_zip":
            return self.corrupt() / FEEDBACK_FILE
        records = self.reference if name == "reference" else self._probe(self._folder(name))
        report = grade_records(name, records, self.reference, self.check_context,
                               settings=DEFAULT_SETTINGS.to_dict(),
                               reference_description="the reference's records")
        write_submission(self.root / name, report, status="graded", problems=[],
                         student=records, reference=self.reference, log="child output\n")
        return self.root / name / FEEDBACK_FILE

    def _folder(self, name: str) -> Path:
        folder = self.root / "submissions" / name
        shutil.copytree(REPO / "student_template", folder,
                        ignore=shutil.ignore_patterns("__pycache__"))
        if name == "partial":
            for module in PARTIAL_MODULES:
                shutil.copy(REPO / "reference" / module, folder / module)
        return folder

    def _probe(self, folder: Path) -> dict[str, Record]:
        scratch = self.root / f"scratch-{uuid.uuid4().hex[:8]}"
        scratch.mkdir()
        ctx = ProbeContext(impl=load_implementation(folder), weights=self.weights,
                           settings=DEFAULT_SETTINGS, fixtures_dir=FIXTURES_DIR, scratch=scratch)
        return probe_all(ctx)


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory, references: dict[str, Record],
          resolved_weights: ResolvedWeights, check_context: CheckContext,
          request: pytest.FixtureRequest) -> Pages:
    return Pages(tmp_path_factory.mktemp("feedback"), references, resolved_weights,
                 check_context, lambda: request.getfixturevalue("corrupt_zip_out"))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright is not installed (pip install playwright)")
    executable = shutil.which("chromium")
    if executable is None:
        pytest.skip("no chromium on PATH (make system-deps, or apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Visit:
    """One page opened in a fresh browser tab, with what went wrong while it loaded."""

    def __init__(self, browser: Any, path: Path, viewport: dict[str, int]) -> None:
        self.tab = browser.new_page(viewport=viewport)
        self.console_errors: list[str] = []
        self.failed_requests: list[str] = []
        self.tab.on("console", self._console)
        self.tab.on("pageerror", lambda e: self.console_errors.append(str(e)))
        self.tab.on("requestfailed", lambda r: self.failed_requests.append(
            f"{r.url[:80]}: {r.failure}"))
        self.tab.goto(path.as_uri(), wait_until="load")

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)

    def horizontal_overflow(self) -> int:
        return self.tab.evaluate(
            "() => document.scrollingElement.scrollWidth - document.scrollingElement.clientWidth")

    def images(self) -> list[dict[str, Any]]:
        return self.tab.evaluate("""() => [...document.images].map(img => ({
            alt: img.alt, complete: img.complete, naturalWidth: img.naturalWidth,
            width: img.getBoundingClientRect().width,
            rendering: getComputedStyle(img).imageRendering}))""")


@pytest.fixture
def visit(browser: Any, pages: Pages) -> Iterator[Callable[..., Visit]]:
    visits: list[Visit] = []

    def open_page(name: str, viewport: dict[str, int] = NARROW) -> Visit:
        visits.append(Visit(browser, pages.path(name), viewport))
        return visits[-1]

    yield open_page
    for v in visits:
        v.tab.close()


PAGE_NAMES = [pytest.param("reference", marks=pytest.mark.slow),
              pytest.param("template", marks=pytest.mark.slow),
              pytest.param("partial", marks=pytest.mark.slow),
              "corrupt_zip"]


@pytest.mark.parametrize("name", PAGE_NAMES)
def test_page_loads_without_console_errors(visit: Callable[..., Visit], name: str) -> None:
    assert visit(name).console_errors == []


@pytest.mark.parametrize("name", PAGE_NAMES)
def test_page_makes_no_failed_request(visit: Callable[..., Visit], name: str) -> None:
    assert visit(name).failed_requests == []


@pytest.mark.parametrize("name", PAGE_NAMES)
def test_page_fits_a_400px_window(visit: Callable[..., Visit], name: str) -> None:
    assert visit(name, NARROW).horizontal_overflow() <= 0


@pytest.mark.parametrize("name", PAGE_NAMES)
def test_every_image_loads(visit: Callable[..., Visit], name: str) -> None:
    images = visit(name).images()
    assert all(i["complete"] and i["naturalWidth"] > 0 for i in images), images


@pytest.mark.slow
@pytest.mark.parametrize("name", ["reference", "partial"])
def test_figures_are_shown_at_their_own_size_in_a_desktop_window(
    visit: Callable[..., Visit], name: str
) -> None:
    images = visit(name, DESKTOP).images()
    assert len(images) >= 2
    for image in images:
        assert image["rendering"] == "auto", image
        assert image["width"] == pytest.approx(image["naturalWidth"], abs=1), image


@pytest.mark.slow
def test_figures_are_scaled_down_not_up_in_a_narrow_window(visit: Callable[..., Visit]) -> None:
    images = visit("reference", NARROW).images()
    assert any(i["width"] < i["naturalWidth"] - 1 for i in images)  # the wide ones shrink
    assert all(i["width"] <= min(i["naturalWidth"], NARROW["width"]) for i in images), images


@pytest.mark.slow
@pytest.mark.parametrize("viewport", [NARROW, DESKTOP], ids=["narrow", "desktop"])
def test_clicking_a_figure_shows_it_at_full_size(
    visit: Callable[..., Visit], viewport: dict[str, int]
) -> None:
    page = visit("partial", viewport)
    grid = page.tab.locator("#fig-attribution_viz-0-yours img")
    grid.click()
    size = grid.evaluate("img => [img.getBoundingClientRect().width, img.naturalWidth]")
    assert size[0] == pytest.approx(size[1], abs=1)
    assert page.horizontal_overflow() <= 0  # the figure scrolls in its own box
    assert page.console_errors == []
