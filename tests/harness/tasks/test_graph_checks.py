"""Task 4 checks (grader/tasks/graph.py): bad graphs and layer lists lose the right points."""

from __future__ import annotations

import pytest

from grader.check.checking import CheckContext
from grader.check.grading import run_check
from grader.points import checks_of
from grader.probe.records import Record
from grader.settings import DEFAULT_SETTINGS
from grader.tasks import graph as task

FULL = {c.name: c.points for c in checks_of("graph")}  # full marks, check by check

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

# A 36-name list typed in from the full ResNet-34 (right for it, wrong for any other model).
HARDCODED_NAMES = (
    "from torchvision import models\n"
    "def conv_layer_names(model):\n"
    "    full = models.resnet34()\n"
    "    return [n for n, m in full.named_modules() if isinstance(m, torch.nn.Conv2d)]\n"
)
# A PNG as big and busy as a graph, with no graph behind it.
NOISE_PNG = FAKE_RENDER.format(
    body="Image.effect_noise((2000, 3000), 64).save(path)\n    return path")
# The real drawing code on models other than the one given, or without the parameter names.
REAL_RENDER = (
    "from torchvision import models\n"
    "def render_model_graph(model, out_path='g', *, image_size=224):\n"
    "    {setup}\n"
    "    output = model(torch.zeros(1, 3, image_size, image_size))\n"
    "    dot = make_dot(output{params})\n"
    "    return Path(dot.render(str(out_path), format='png', cleanup=True))\n"
)
PARAMS = ", params=dict(model.named_parameters())"
# Their own model: a fresh ResNet-34 cut to the first block of each stage.
OWN_MODEL = REAL_RENDER.format(setup=(
    "model = models.resnet34().eval()\n"
    "    for s in ('layer1', 'layer2', 'layer3', 'layer4'):\n"
    "        setattr(model, s, torch.nn.Sequential(getattr(model, s)[0]))"), params=PARAMS)
NO_PARAMS = REAL_RENDER.format(setup="model.eval()", params="")
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
    # model (conv_layer_names): the full model's names whatever model is given.
    "hardcoded_conv_names": (BLANK_PNG + HARDCODED_NAMES,
                             {"graph_png": "blank", "conv_names": "for the cut ResNet-34"}),
    # model (render_model_graph): any big PNG earns nothing without the graph's source.
    "noise_png": (NOISE_PNG, {"graph_png": "no graph source"}),
}

# Wrong drawings that run Graphviz (slow): (source, words in graph_png's message).
WRONG_DRAWINGS = {
    "graph_of_own_model": (OWN_MODEL, "not those of the model it was given"),
    "make_dot_without_params": (NO_PARAMS, "pass params=dict(model.named_parameters())"),
}

# Honest rewrites (run Graphviz, slow): full marks.
HONEST = {
    "handout_snippet": (
        "def render_model_graph(model, out_path='resnet34_torchvision_graph', *, "
        "image_size=224):\n"
        "    dummy_input = torch.randn(1, 3, image_size, image_size)\n"
        "    output = model(dummy_input)\n"
        "    dot = make_dot(output, params=dict(model.named_parameters()))\n"
        "    dot.render(str(out_path), format='png', cleanup=True)\n"
        "    return Path(str(out_path) + '.png')\n"
    ),
    "pipe_to_file": (
        "def render_model_graph(model, out_path='g', *, image_size=224):\n"
        "    with torch.enable_grad():\n"
        "        output = model(torch.ones(1, 3, image_size, image_size))\n"
        "    dot = make_dot(output, params=dict(model.named_parameters()))\n"
        "    path = Path(f'{out_path}.png')\n"
        "    path.write_bytes(dot.pipe(format='png'))\n"
        "    return path\n"
    ),
    "conv_names_by_type_name": (
        "def conv_layer_names(model):\n"
        "    return [name for name, module in model.named_modules()\n"
        "            if type(module).__name__ == 'Conv2d']\n"
    ),
}


@pytest.fixture(params=["practice", "graded"])
def settings(request, graded_test_settings):
    """Both the published practice variant and a graded one."""
    return DEFAULT_SETTINGS if request.param == "practice" else graded_test_settings


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
def test_wrong_implementation_loses_its_points(grade_variant, variant: str, settings) -> None:
    source, failing = WRONG[variant]
    graded = grade_variant({"graph.py": source}, tasks=["graph", "model"], settings=settings)
    assert set(graded.failed("graph")) == set(failing)
    for name, words in failing.items():
        assert words in graded.check("graph", name).message
    assert graded.score("model") == graded.max_score("model")


@pytest.mark.slow  # renders a graph with Graphviz
@pytest.mark.parametrize("variant", list(WRONG_DRAWINGS), ids=list(WRONG_DRAWINGS))
def test_wrong_drawing_earns_nothing_for_the_graph(grade_variant, variant: str,
                                                   settings) -> None:
    source, words = WRONG_DRAWINGS[variant]
    graded = grade_variant({"graph.py": source}, tasks=["graph"], settings=settings)
    assert graded.failed("graph") == ["graph_png"]
    check = graded.check("graph", "graph_png")
    assert check.score == 0 and words in check.message, check


@pytest.mark.slow  # renders a graph with Graphviz
@pytest.mark.parametrize("rewrite", list(HONEST), ids=list(HONEST))
def test_honest_rewrite_keeps_full_marks(grade_variant, rewrite: str, settings) -> None:
    graded = grade_variant({"graph.py": HONEST[rewrite]}, tasks=["graph"], settings=settings)
    assert {c.name: c.score for c in graded.results["graph"].checks} == FULL


@pytest.mark.parametrize("settings_name", ["practice", "graded"])
def test_kept_blocks_start_each_stage_and_add_two(settings_name, graded_test_settings) -> None:
    settings = DEFAULT_SETTINGS if settings_name == "practice" else graded_test_settings
    keep = task.kept_blocks(settings)
    assert list(keep) == ["layer1", "layer2", "layer3", "layer4"]
    assert all(blocks[0] == 0 for blocks in keep.values())
    assert sum(len(blocks) - 1 for blocks in keep.values()) == 2


def test_kept_blocks_differ_between_variants(graded_test_settings) -> None:
    assert task.kept_blocks(DEFAULT_SETTINGS) != task.kept_blocks(graded_test_settings)


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

def _source(params: list[str], extra_nodes: int) -> str:
    """A torchviz-like DOT source with one node per parameter plus ``extra_nodes``."""
    lines = ["digraph {", "\tnode [shape=box]"]
    lines += [f'\t{i} [label="{name}\n (3)" fillcolor=lightblue]' for i, name in enumerate(params)]
    lines += [f"\t{1000 + i} [label=AddBackward0]" for i in range(extra_nodes)]
    return "\n".join([*lines, "}"])


def _graph_record(graph: dict, source: str | None = None) -> Record:
    import torch

    tensors = {} if source is None else {"graph_source": torch.tensor(
        list(source.encode()), dtype=torch.uint8)}
    return Record(task="graph", data={"calls": {"render_model_graph": {"ok": True}},
                                      "graph": graph}, tensors=tensors)


PARAM_NAMES = ["conv1.weight", "bn1.weight", "bn1.bias", "fc.weight", "fc.bias"]
DOT_REFERENCE = {"type": "pathlib.PosixPath", "path": "graph.dot", "suffix": ".dot",
                 "exists": True, "kind": "dot", "dot_nodes": 347, "dot_edges": 362}
PNG_REFERENCE = {"type": "pathlib.PosixPath", "path": "graph.png", "suffix": ".png",
                 "exists": True, "kind": "png", "width": 3941, "height": 9923,
                 "pixel_std": 16.4}


# Stricter by issue 13: a .dot is judged by its source (parameter names and node count of the
# model given), no longer by a count of `[label=` lines the student's process reported.
@pytest.mark.parametrize(("params", "nodes", "reference", "ok"), [
    (PARAM_NAMES, 342, DOT_REFERENCE, True),
    (PARAM_NAMES, 55, DOT_REFERENCE, False),
    ([*PARAM_NAMES[:3], "layer9.weight"], 343, DOT_REFERENCE, False),
    (PARAM_NAMES, 342, PNG_REFERENCE, False),
], ids=["dot_like_reference", "dot_of_another_graph", "dot_of_another_model",
        "dot_when_reference_has_png"])
def test_dot_fallback(check_context: CheckContext, params: list[str], nodes: int,
                      reference: dict, ok: bool) -> None:
    student = _graph_record(DOT_REFERENCE, _source(params, nodes))
    ref = _graph_record(reference, _source(PARAM_NAMES, 342))
    outcome = run_check(task.check_graph_png, student, ref, check_context)
    assert outcome.passed is ok, outcome.message
    if not ok:
        assert "Graphviz" in outcome.message or "nodes" in outcome.message or \
            "parameters" in outcome.message


def test_source_facts_parse_torchviz_output() -> None:
    import torch
    from torchviz import make_dot

    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU(), torch.nn.Linear(2, 1))
    dot = make_dot(model(torch.zeros(1, 3)), params=dict(model.named_parameters()))
    facts = task.source_facts(_graph_record({}, dot.source))
    assert facts["params"] == ["0.bias", "0.weight", "2.bias", "2.weight"]
    assert facts["nodes"] == dot.source.count("[label=")
