"""Running a handout-shaped submission's top-level code offline (issue 15, run mode).

The stand-ins answer the handout's two URLs and refuse the rest; the run keeps what
the code defined before an error or its time budget; Task 1 is graded on the run's
``model`` and ``labels``; the other top-level tasks get a "graded by hand" note.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from grader.check.grading import check_task, probe_task
from grader.probe.implementation import load_implementation
from grader.probe.inputs import FIXTURES_DIR
from grader.probe.probing import ProbeContext
from grader.probe.top_level import (
    HANDOUT_LABELS_URL,
    HANDOUT_PHOTO_URL,
    OfflineError,
    answer,
    evidence,
    handout_labels_json,
    run_top_level,
)
from grader.settings import DEFAULT_SETTINGS

HANDOUT = Path(__file__).resolve().parents[3] / "fixtures" / "handout_submissions"
PHOTO = (FIXTURES_DIR / "images" / "chelsea.jpg").read_bytes()


def _run(tmp_path: Path, source: str, seconds: float = 30):
    return run_top_level(source, filename=str(tmp_path / "top_level.py"),
                         workdir=tmp_path / "work", photo=PHOTO, seconds=seconds)


def test_the_handout_labels_url_gets_the_handout_format() -> None:
    body, kind = answer(HANDOUT_LABELS_URL, PHOTO, handout_labels_json())
    labels = json.loads(body)
    assert kind == "application/json" and len(labels) == 1000
    assert labels["0"][1] == "tench" and labels["159"][1] == "Rhodesian_ridgeback"


@pytest.mark.parametrize("url", [HANDOUT_PHOTO_URL, "https://example.org/cat.JPG",
                                 "https://images.unsplash.com/photo-123?w=640"])
def test_image_urls_get_the_graders_photo(url: str) -> None:
    assert answer(url, PHOTO, b"{}") == (PHOTO, "image/png")


def test_other_urls_are_refused_with_a_message() -> None:
    with pytest.raises(OfflineError, match="offline"):
        answer("https://example.org/weights.pth", PHOTO, b"{}")


def test_the_handout_download_code_runs_offline(tmp_path: Path) -> None:
    run = _run(tmp_path, "\n".join([
        "import requests", "from PIL import Image",
        f"labels = requests.get({HANDOUT_LABELS_URL!r}).json()",
        "labels = {int(k): v[1] for k, v in labels.items()}",
        f"img = Image.open(requests.get({HANDOUT_PHOTO_URL!r}, stream=True).raw)",
        "size = img.size"]))
    assert run.error is None, run.error
    assert len(run.namespace["labels"]) == 1000
    import io

    from PIL import Image
    assert run.namespace["size"] == Image.open(io.BytesIO(PHOTO)).size
    assert [u.split(" -> ")[1] for u in run.urls] == ["labels", "photo"]


def test_a_refused_download_is_a_connection_error_the_code_can_catch(tmp_path: Path) -> None:
    run = _run(tmp_path, "import requests\ntry:\n    requests.get('https://example.org/x')\n"
                         "except requests.ConnectionError as exc:\n    caught = str(exc)\n")
    assert run.error is None and "offline" in run.namespace["caught"]


def test_what_was_defined_before_an_error_is_kept_and_the_line_named(tmp_path: Path) -> None:
    run = _run(tmp_path, "a = 1\nb = undefined_name\nc = 3\n")
    assert run.namespace["a"] == 1 and "c" not in run.namespace
    assert run.error is not None and run.error.startswith("NameError") and "(line 2)" in run.error


def test_the_budget_stops_a_run_that_does_not_end(tmp_path: Path) -> None:
    run = _run(tmp_path, "a = 1\ntry:\n    while True:\n        pass\nexcept Exception:\n"
                         "    pass\n", seconds=0.5)
    assert run.namespace["a"] == 1
    assert run.error is not None and "budget" in run.error


def test_plt_show_and_files_are_recorded_not_shown(tmp_path: Path) -> None:
    run = _run(tmp_path, "from matplotlib import pyplot as plt\nimport numpy as np\n"
                         "fig, axes = plt.subplots(3, 3)\n"
                         "for ax in axes.flat:\n    ax.imshow(np.zeros((4, 4)))\n"
                         "plt.show()\nopen('graph.png', 'wb').write(b'x')\n")
    facts = evidence(run)
    assert run.error is None, run.error
    assert facts["figures"] == [{"axes": 9, "image_axes": 9, "titles": [""] * 9}]
    assert facts["files"] == ["graph.png"]


def test_input_is_refused(tmp_path: Path) -> None:
    run = _run(tmp_path, "name = input('your name? ')\n")
    assert run.error is not None and "keyboard" in run.error


def _graded(case: str, tasks: tuple[str, ...], tmp_path: Path, resolved_weights,
            references_for, check_context, run: float | None):
    impl = load_implementation(next((HANDOUT / case).glob("lab3.*")))
    ctx = ProbeContext(impl=impl, weights=resolved_weights, settings=DEFAULT_SETTINGS,
                       fixtures_dir=FIXTURES_DIR, scratch=tmp_path, run_top_level=run)
    reference = references_for(DEFAULT_SETTINGS)
    records = {t: probe_task(t, ctx) for t in tasks}
    results = {t: check_task(t, records[t], reference[t], check_context) for t in tasks}
    return results, records


def test_task1_is_graded_on_the_model_and_labels_the_run_built(
        tmp_path: Path, resolved_weights, references_for, check_context) -> None:
    # A short budget: the handout's Task 1 cell comes first and takes a second or two.
    results, records = _graded("handout_cells", ("model", "graph"), tmp_path,
                               resolved_weights, references_for, check_context, run=20)
    model = results["model"]
    passed = {c.name for c in model.checks if c.passed}
    assert {"architecture", "eval_mode", "weights"} <= passed, model
    labels = next(c for c in model.checks if c.name == "labels")
    assert 0 < labels.score < labels.max_score, labels  # load_labels(path) is the template's
    assert any("graded on the `model` your top-level code built" in n
               for n in records["model"].data["adapted"])
    graph_notes = records["graph"].data["adapted"]
    assert any("judged on the graphviz graph" in n for n in graph_notes), graph_notes


def test_without_run_mode_task1_earns_nothing_from_top_level_code(
        tmp_path: Path, resolved_weights, references_for, check_context) -> None:
    results, records = _graded("handout_cells", ("model",), tmp_path, resolved_weights,
                               references_for, check_context, run=None)
    assert results["model"].score == 0
    assert any("--run-top-level" in n for n in records["model"].data["adapted"])


def test_a_run_that_loads_another_model_fails_the_weights_check(
        tmp_path: Path, resolved_weights, references_for, check_context) -> None:
    folder = tmp_path / "wrong"
    folder.mkdir()
    nb = json.loads((HANDOUT / "handout_cells" / "lab3.ipynb").read_text())
    for cell in nb["cells"]:
        if "resnet34(weights=" in "".join(cell["source"]):
            cell["source"] = "".join(cell["source"]).replace(
                "weights=models.ResNet34_Weights.IMAGENET1K_V1", "weights=None")
    (folder / "lab3.ipynb").write_text(json.dumps(nb))
    impl = load_implementation(folder / "lab3.ipynb")
    ctx = ProbeContext(impl=impl, weights=resolved_weights, settings=DEFAULT_SETTINGS,
                       fixtures_dir=FIXTURES_DIR, scratch=tmp_path / "s", run_top_level=20)
    reference = references_for(DEFAULT_SETTINGS)
    result = check_task("model", probe_task("model", ctx), reference["model"], check_context)
    weights = next(c for c in result.checks if c.name == "weights")
    assert weights.score == 0, weights


def _ig_notebook(folder: Path, ig_cell: str) -> Path:
    """The handout's cells up to inference, then ``ig_cell`` (no grid: a short run)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("handout_build", HANDOUT / "build_notebooks.py")
    assert spec is not None and spec.loader is not None
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    cells = [build.code(build.IMPORTS), build.code(build.TASK1), build.code(build.TRANSFORM),
             build.code(build.UTILS), build.code(build.INFERENCE), build.code(ig_cell)]
    folder.mkdir(parents=True)
    path = folder / "lab3.ipynb"
    path.write_text(json.dumps(build.notebook(cells)))
    return path


def _ig_graded(path: Path, tmp_path: Path, resolved_weights, references_for, check_context):
    impl = load_implementation(path)
    ctx = ProbeContext(impl=impl, weights=resolved_weights, settings=DEFAULT_SETTINGS,
                       fixtures_dir=FIXTURES_DIR, scratch=tmp_path / "scratch", run_top_level=60)
    reference = references_for(DEFAULT_SETTINGS)
    record = probe_task("integrated_gradients", ctx)
    return check_task("integrated_gradients", record, reference["integrated_gradients"],
                      check_context), record


def test_top_level_integrated_gradients_earns_completeness_and_agreement(
        tmp_path: Path, resolved_weights, references_for, check_context) -> None:
    path = _ig_notebook(tmp_path / "honest", "from captum.attr import IntegratedGradients\n"
                        "ig = IntegratedGradients(model)\n"
                        "attributions_ig = ig.attribute(input_tensor, target=pred_label_idx, "
                        "n_steps=20, method='riemann_trapezoid')\n")
    result, record = _ig_graded(path, tmp_path, resolved_weights, references_for, check_context)
    assert "attributions_ig" in record.data["top_level"]["tensors"]
    scores = {c.name: c.score for c in result.checks}
    assert scores["completeness"] == 5 and scores["agreement"] == 6, result
    assert scores["output_format"] == 0 and scores["default_baseline"] == 0  # the template's


@pytest.mark.parametrize("wrong", [
    "from captum.attr import Saliency\nattributions = Saliency(model).attribute(input_tensor, "
    "target=pred_label_idx)\n",
    "from captum.attr import InputXGradient\nattributions = InputXGradient(model).attribute("
    "input_tensor, target=pred_label_idx)\n",
    "from captum.attr import IntegratedGradients\nattributions = IntegratedGradients(model)."
    "attribute(input_tensor, target=(int(pred_label_idx) + 1) % 1000, n_steps=20)\n",
], ids=["saliency", "input_x_gradient", "other_target"])
def test_top_level_attributions_that_are_not_integrated_gradients_earn_nothing(
        wrong: str, tmp_path: Path, resolved_weights, references_for, check_context) -> None:
    path = _ig_notebook(tmp_path / "wrong", wrong)
    result, _ = _ig_graded(path, tmp_path, resolved_weights, references_for, check_context)
    assert result.score == 0, result


def test_a_function_that_downloads_the_handout_labels_is_answered_offline(make_variant,
                                                                          grade_impl) -> None:
    """Not only in run mode: every probe runs with the stand-ins, so a load_labels() written
    around the handout's download works in the sandbox (no network) and says so."""
    folder = make_variant({"model.py": (
        "import requests as _requests\n\n\n"
        "def load_labels(path=None):\n"
        "    if path is not None:\n"
        "        return _labels_from_json(path)\n"
        f"    labels = _requests.get({HANDOUT_LABELS_URL!r}).json()\n"
        "    return {int(k): v[1] for k, v in labels.items()}\n")})
    graded = grade_impl(folder, tasks=["model"])
    labels = graded.check("model", "labels")
    assert labels.passed, labels.message
    assert any("answered by the grader's offline stand-ins" in n
               for n in graded.records["model"].data["adapted"])


def test_a_function_that_downloads_anything_else_fails_at_once_with_a_message(
        make_variant, grade_impl) -> None:
    folder = make_variant({"model.py": (
        "import requests as _requests\n\n\n"
        "def load_labels(path=None):\n"
        "    return _requests.get('https://example.org/labels.json', timeout=600).json()\n")})
    graded = grade_impl(folder, tasks=["model"])
    labels = graded.check("model", "labels")
    assert not labels.passed and "offline" in labels.message, labels.message


def _graph_notebook(folder: Path, graph_cell: str) -> Path:
    import importlib.util

    spec = importlib.util.spec_from_file_location("handout_build", HANDOUT / "build_notebooks.py")
    assert spec is not None and spec.loader is not None
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    cells = [build.code(build.IMPORTS), build.code(build.TASK1), build.code(graph_cell)]
    folder.mkdir(parents=True)
    path = folder / "lab3.ipynb"
    path.write_text(json.dumps(build.notebook(cells)))
    return path


def _graph_graded(path: Path, tmp_path: Path, resolved_weights, references_for, check_context):
    impl = load_implementation(path)
    ctx = ProbeContext(impl=impl, weights=resolved_weights, settings=DEFAULT_SETTINGS,
                       fixtures_dir=FIXTURES_DIR, scratch=tmp_path / "scratch", run_top_level=60)
    reference = references_for(DEFAULT_SETTINGS)
    return check_task("graph", probe_task("graph", ctx), reference["graph"], check_context)


HANDOUT_GRAPH = """from torchviz import make_dot

dummy_input = torch.randn(1, 3, 224, 224)
output = model(dummy_input)
dot = make_dot(output, params=dict(model.named_parameters()))
"""


def test_top_level_graph_of_the_model_earns_graph_png(tmp_path: Path, resolved_weights,
                                                     references_for, check_context) -> None:
    path = _graph_notebook(tmp_path / "honest", HANDOUT_GRAPH)
    result = _graph_graded(path, tmp_path, resolved_weights, references_for, check_context)
    check = next(c for c in result.checks if c.name == "graph_png")
    assert check.passed, check.message
    conv = next(c for c in result.checks if c.name == "conv_names")
    assert not conv.passed  # conv_layer_names is the template's


@pytest.mark.parametrize("wrong", [
    HANDOUT_GRAPH.replace(", params=dict(model.named_parameters())", ""),
    HANDOUT_GRAPH.replace("output = model(dummy_input)",
                          "output = model.layer1(model.conv1(dummy_input))"),
    "x = 1\n",
], ids=["no_params", "part_of_the_model", "no_graph"])
def test_top_level_graph_that_is_not_the_models_earns_nothing(
        wrong: str, tmp_path: Path, resolved_weights, references_for, check_context) -> None:
    path = _graph_notebook(tmp_path / "wrong", wrong)
    result = _graph_graded(path, tmp_path, resolved_weights, references_for, check_context)
    assert result.score == 0, result
