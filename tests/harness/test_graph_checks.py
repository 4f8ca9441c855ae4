"""Task 4 checks (grader/tasks/graph.py): bad graphs and layer lists lose the right points."""

from __future__ import annotations

import pytest

from grader.checking import CheckContext
from grader.grading import run_check
from grader.records import Record
from grader.tasks import graph as task

FULL = {"graph_png": 3.0, "conv_names": 3.0}

# Fast stand-ins for render_model_graph (no Graphviz run), appended to graph.py.
FAKE_RENDER = (
    "def render_model_graph(model, out_path='g', *, image_size=224):\n"
    "    from PIL import Image\n"
    "    path = Path(str(out_path) + '.png')\n"
    "    {body}\n"
)
BLANK_PNG = FAKE_RENDER.format(
    body="Image.new('RGB', (800, 2000), 'white').save(path)\n    return path")
TINY_PNG = FAKE_RENDER.format(
    body="Image.effect_noise((40, 40), 64).save(path)\n    return path")
NO_DOWNSAMPLE = (
    "_orig_conv_layer_names = conv_layer_names\n"
    "def conv_layer_names(model):\n"
    "    return [n for n in _orig_conv_layer_names(model) if 'downsample' not in n]\n"
)
WITH_BATCHNORM = (
    "def conv_layer_names(model):\n"
    "    return [n for n, m in model.named_modules()\n"
    "            if isinstance(m, (torch.nn.Conv2d, torch.nn.BatchNorm2d))]\n"
)

# (source appended to graph.py, {failing check: words in its message}).
WRONG = {
    "blank_png": (BLANK_PNG, {"graph_png": "blank"}),
    "tiny_png": (TINY_PNG, {"graph_png": "40x40"}),
    "missing_file": (FAKE_RENDER.format(body="return path"), {"graph_png": "does not exist"}),
    "not_a_png": (FAKE_RENDER.format(body="path.write_text('hello')\n    return path"),
                  {"graph_png": "not a PNG"}),
    "no_downsample": (BLANK_PNG + NO_DOWNSAMPLE,
                      {"graph_png": "blank", "conv_names": "downsample"}),
    "with_batchnorm": (BLANK_PNG + WITH_BATCHNORM,
                       {"graph_png": "blank", "conv_names": "'bn1'"}),
}


@pytest.mark.slow  # renders the full ResNet-34 graph with Graphviz (~2-4 s)
def test_reference_gets_full_points(grade_impl) -> None:
    graded = grade_impl("reference", tasks=["graph"])
    assert {c.name: c.score for c in graded.results["graph"].checks} == FULL
    assert graded.records["graph"].tensors["graph_thumbnail"].dtype.is_floating_point is False


def test_template_is_not_implemented(grade_impl) -> None:
    graded = grade_impl("student_template", tasks=["graph"])
    assert graded.score("graph") == 0
    for check in graded.results["graph"].checks:
        assert "not implemented yet" in check.message, check


@pytest.mark.parametrize("variant", list(WRONG), ids=list(WRONG))
def test_wrong_implementation_loses_its_points(grade_variant, variant: str) -> None:
    source, failing = WRONG[variant]
    graded = grade_variant({"graph.py": source}, tasks=["graph", "model"])
    assert set(graded.failed("graph")) == set(failing)
    for name, words in failing.items():
        assert words in graded.check("graph", name).message
    assert graded.score("model") == graded.max_score("model")


def test_downsample_message_names_what_is_missing(grade_variant) -> None:
    graded = grade_variant({"graph.py": BLANK_PNG + NO_DOWNSAMPLE}, tasks=["graph"])
    message = graded.check("graph", "conv_names").message
    assert "33 names, expected 36" in message and "'layer2.0.downsample.0'" in message


@pytest.mark.slow  # renders the full ResNet-34 graph with Graphviz (~2-4 s)
def test_png_written_but_not_returned_earns_half(grade_variant, reference_records) -> None:
    """The real render, returning nothing: the PNG is judged, the return value costs half."""
    source = (
        "_orig_render = render_model_graph\n"
        "def render_model_graph(model, out_path='g', *, image_size=224):\n"
        "    _orig_render(model, out_path, image_size=image_size)\n"
    )
    graded = grade_variant({"graph.py": source}, tasks=["graph"])
    check = graded.check("graph", "graph_png")
    if reference_records["graph"].data["graph"].get("kind") != "png":
        pytest.skip("Graphviz is not installed: the reference graph is a .dot")
    assert check.score == 1.5 and "return the Path" in check.message


HOSTILE_RENDER = {
    "none": "None",
    "always_equal": "type('Eq', (), {'__eq__': lambda s, o: True})()",
    "fspath_object": "type('P', (), {'__fspath__': lambda s: str(out_path) + '.png'})()",
    "str_subclass": "type('S', (str,), {'__eq__': lambda s, o: True})('/nonexistent.png')",
    "outside_scratch": "'/etc/hostname'",
}


@pytest.mark.parametrize("value", list(HOSTILE_RENDER), ids=list(HOSTILE_RENDER))
def test_hostile_render_result_scores_zero(grade_variant, value: str) -> None:
    source = (f"def render_model_graph(model, out_path='g', *, image_size=224):\n"
              f"    return {HOSTILE_RENDER[value]}\n")
    graded = grade_variant({"graph.py": source}, tasks=["graph"])
    check = graded.check("graph", "graph_png")
    assert check.score == 0 and "render" in check.message, check


HOSTILE_NAMES = {
    "none": ("None", "return a list of str"),
    "always_equal": ("type('Eq', (), {'__eq__': lambda s, o: True})()", "return a list of str"),
    "list_subclass": ("type('L', (list,), {'__eq__': lambda s, o: True})(['conv1'])",
                      "return a list of str"),
    "modules_not_names": ("[m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]",
                          "non-str"),
    "tensor": ("torch.zeros(36)", "return a list of str"),
}


@pytest.mark.parametrize("value", list(HOSTILE_NAMES), ids=list(HOSTILE_NAMES))
def test_hostile_conv_names_score_zero(grade_variant, value: str) -> None:
    expression, words = HOSTILE_NAMES[value]
    source = (BLANK_PNG + f"def conv_layer_names(model):\n    return {expression}\n")
    graded = grade_variant({"graph.py": source}, tasks=["graph"])
    check = graded.check("graph", "conv_names")
    assert check.score == 0 and words in check.message, check


# ----------------------------------------------- the .dot fallback (records built by hand)

def _graph_record(graph: dict) -> Record:
    return Record(task="graph", data={"calls": {"render_model_graph": {"ok": True}},
                                      "graph": graph})


DOT_REFERENCE = {"type": "pathlib.PosixPath", "path": "graph.dot", "suffix": ".dot",
                 "exists": True, "kind": "dot", "dot_nodes": 347, "dot_edges": 362}
PNG_REFERENCE = {"type": "pathlib.PosixPath", "path": "graph.png", "suffix": ".png",
                 "exists": True, "kind": "png", "width": 3941, "height": 9923,
                 "pixel_std": 16.4}


@pytest.mark.parametrize(("student_nodes", "reference", "ok"), [
    (350, DOT_REFERENCE, True),
    (60, DOT_REFERENCE, False),
    (347, PNG_REFERENCE, False),
], ids=["dot_like_reference", "dot_of_another_graph", "dot_when_reference_has_png"])
def test_dot_fallback(check_context: CheckContext, student_nodes: int, reference: dict,
                      ok: bool) -> None:
    student = _graph_record({**DOT_REFERENCE, "dot_nodes": student_nodes})
    outcome = run_check(task.check_graph_png, student, _graph_record(reference), check_context)
    assert outcome.passed is ok, outcome.message
    if not ok:
        assert "Graphviz" in outcome.message or "nodes" in outcome.message
