"""Task 4: ``reference.graph`` — the torchviz model graph and the Conv2d layer names.

Rendering the PNG takes Graphviz about a second, so it is done once per module
(marked ``graphviz``); the rest uses the ``.dot`` fallback, which needs no Graphviz.
"""

from __future__ import annotations

import copy
import shutil

import pytest
import torch
from PIL import Image

from reference.graph import conv_layer_names, render_model_graph

# ResNet-34: conv1, then stages of 3, 4, 6 and 3 BasicBlocks with two convolutions each
# (conv1, conv2); the first block of stages 2-4 adds a 1x1 projection, downsample.0,
# listed after its block's conv2 (named_modules order).
EXPECTED_CONV_NAMES = [
    "conv1",
    "layer1.0.conv1", "layer1.0.conv2",
    "layer1.1.conv1", "layer1.1.conv2",
    "layer1.2.conv1", "layer1.2.conv2",
    "layer2.0.conv1", "layer2.0.conv2", "layer2.0.downsample.0",
    "layer2.1.conv1", "layer2.1.conv2",
    "layer2.2.conv1", "layer2.2.conv2",
    "layer2.3.conv1", "layer2.3.conv2",
    "layer3.0.conv1", "layer3.0.conv2", "layer3.0.downsample.0",
    "layer3.1.conv1", "layer3.1.conv2",
    "layer3.2.conv1", "layer3.2.conv2",
    "layer3.3.conv1", "layer3.3.conv2",
    "layer3.4.conv1", "layer3.4.conv2",
    "layer3.5.conv1", "layer3.5.conv2",
    "layer4.0.conv1", "layer4.0.conv2", "layer4.0.downsample.0",
    "layer4.1.conv1", "layer4.1.conv2",
    "layer4.2.conv1", "layer4.2.conv2",
]  # fmt: skip


# The fallback tests draw the graph of a 32x32 input: the same graph, 50x less compute.
SMALL = 32


@pytest.fixture(scope="module")
def graph_model(trusted_model) -> torch.nn.Module:
    """A copy of the trusted model shared by the tests that leave it as it is."""
    return copy.deepcopy(trusted_model)


@pytest.fixture
def model_copy(trusted_model) -> torch.nn.Module:
    """A private copy of the trusted model, for tests that change its mode."""
    return copy.deepcopy(trusted_model)


@pytest.fixture
def without_dot(monkeypatch):
    """Graphviz's ``dot`` looks absent: ``shutil.which("dot")`` is None."""
    monkeypatch.setattr(shutil, "which", lambda name, *args, **kwargs: None)


# --- conv_layer_names ---------------------------------------------------------------------


def test_conv_layer_names_of_resnet34_are_the_36_expected(trusted_model):
    assert len(EXPECTED_CONV_NAMES) == 36
    assert conv_layer_names(trusted_model) == EXPECTED_CONV_NAMES


def test_conv_layer_names_resolve_to_conv2d_modules(trusted_model):
    for name in conv_layer_names(trusted_model):
        assert isinstance(trusted_model.get_submodule(name), torch.nn.Conv2d), name


def test_conv_layer_names_keep_only_conv2d_in_definition_order():
    class MyConv(torch.nn.Conv2d):
        pass

    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3),
        torch.nn.Sequential(torch.nn.Conv1d(4, 4, 1), MyConv(4, 4, 1)),
        torch.nn.ConvTranspose2d(4, 4, 2),
        torch.nn.ReLU(),
        torch.nn.Conv2d(4, 2, 1),
    )
    assert conv_layer_names(model) == ["0", "1.1", "4"]


# --- render_model_graph: the PNG ----------------------------------------------------------


@pytest.fixture(scope="module")
def rendered(graph_model, tmp_path_factory):
    """(returned path, requested stem, state dict before, model after) of one PNG render."""
    if shutil.which("dot") is None:
        pytest.skip("needs Graphviz's dot on PATH (sudo apt-get install graphviz)")
    stem = tmp_path_factory.mktemp("graph") / "resnet34_torchvision_graph"
    before = copy.deepcopy(graph_model.state_dict())
    return render_model_graph(graph_model, stem), stem, before, graph_model


@pytest.mark.graphviz
def test_render_writes_a_png_next_to_the_given_stem(rendered):
    path, stem, _, _ = rendered
    assert path == stem.with_name(stem.name + ".png")
    assert path.is_file()


@pytest.mark.graphviz
def test_rendered_png_opens_and_is_larger_than_100x100(rendered):
    with Image.open(rendered[0]) as img:
        assert img.format == "PNG"
        assert img.width > 100 and img.height > 100


@pytest.mark.graphviz
def test_render_cleans_up_the_dot_source(rendered):
    _, stem, _, _ = rendered
    assert sorted(p.name for p in stem.parent.iterdir()) == [stem.name + ".png"]


@pytest.mark.graphviz
def test_render_leaves_weights_buffers_and_grads_unchanged(rendered):
    _, _, before, model = rendered
    after = model.state_dict()
    assert all(torch.equal(after[name], tensor) for name, tensor in before.items())
    assert all(p.grad is None for p in model.parameters())


# --- render_model_graph: without Graphviz --------------------------------------------------


def test_without_dot_the_dot_source_is_written(graph_model, tmp_path, without_dot):
    path = render_model_graph(graph_model, tmp_path / "graph", image_size=SMALL)
    assert path == tmp_path / "graph.dot"
    assert path.read_text(encoding="utf-8").lstrip().startswith("digraph")


def test_without_dot_no_png_is_written(graph_model, tmp_path, without_dot):
    render_model_graph(graph_model, tmp_path / "graph", image_size=SMALL)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["graph.dot"]


def test_without_dot_one_line_says_how_to_install_graphviz(
    graph_model, tmp_path, without_dot, capsys
):
    render_model_graph(graph_model, tmp_path / "graph", image_size=SMALL)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    for command in ("apt-get install graphviz", "brew install graphviz", "conda install graphviz"):
        assert command in lines[0]


def test_unrunnable_dot_falls_back_to_the_dot_source(graph_model, tmp_path, monkeypatch):
    # which() finds a dot that cannot run: graphviz raises ExecutableNotFound.
    monkeypatch.setattr(shutil, "which", lambda name, *args, **kwargs: "/nonexistent/dot")
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    path = render_model_graph(graph_model, tmp_path / "graph", image_size=SMALL)
    assert path == tmp_path / "graph.dot"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["graph.dot"]


def test_graph_names_the_parameters(graph_model, tmp_path, without_dot):
    path = render_model_graph(graph_model, tmp_path / "graph", image_size=SMALL)
    source = path.read_text(encoding="utf-8")
    assert "conv1.weight" in source and "layer4.2.conv2.weight" in source and "fc.bias" in source


def test_missing_parent_folders_are_created(graph_model, tmp_path, without_dot):
    path = render_model_graph(graph_model, tmp_path / "a" / "b" / "graph", image_size=SMALL)
    assert path.is_file()


def test_dummy_input_is_one_224x224_image_by_default(graph_model, tmp_path, without_dot, spy_on):
    spy = spy_on(graph_model)
    render_model_graph(spy, tmp_path / "graph")
    assert [call.shape for call in spy.calls] == [(1, 3, 224, 224)]
    assert spy.calls[0].grad_enabled


def test_image_size_sets_the_dummy_input_side(graph_model, tmp_path, without_dot, spy_on):
    spy = spy_on(graph_model)
    render_model_graph(spy, tmp_path / "graph", image_size=SMALL)
    assert [call.shape for call in spy.calls] == [(1, 3, SMALL, SMALL)]


# --- render_model_graph: the model is left as it was --------------------------------------


def test_render_keeps_an_eval_model_in_eval_mode(graph_model, tmp_path, without_dot):
    render_model_graph(graph_model, tmp_path / "graph", image_size=SMALL)
    assert not any(m.training for m in graph_model.modules())


def test_render_keeps_a_training_model_in_training_mode(model_copy, tmp_path, without_dot):
    model_copy.train()
    model_copy.layer1.eval()  # a mixed model keeps each module's own flag
    render_model_graph(model_copy, tmp_path / "graph", image_size=SMALL)
    assert model_copy.training and model_copy.layer4.training
    assert not any(m.training for m in model_copy.layer1.modules())


def test_render_does_not_update_batchnorm_statistics(model_copy, tmp_path, without_dot):
    # A forward pass in training mode would; the graph is drawn in eval mode.
    model_copy.train()
    before = copy.deepcopy(model_copy.state_dict())
    render_model_graph(model_copy, tmp_path / "graph", image_size=SMALL)
    after = model_copy.state_dict()
    assert [n for n, t in before.items() if not torch.equal(after[n], t)] == []


def test_render_leaves_parameter_grads_none(graph_model, tmp_path, without_dot):
    render_model_graph(graph_model, tmp_path / "graph", image_size=SMALL)
    assert all(p.grad is None for p in graph_model.parameters())


@pytest.mark.parametrize("context", ["no_grad", "inference_mode"])
def test_render_works_inside_no_grad_contexts(graph_model, tmp_path, without_dot, context):
    with getattr(torch, context)():
        path = render_model_graph(graph_model, tmp_path / "graph", image_size=SMALL)
    assert "conv1.weight" in path.read_text(encoding="utf-8")


def test_render_does_not_touch_the_global_random_state(graph_model, tmp_path, without_dot):
    state = torch.get_rng_state()
    render_model_graph(graph_model, tmp_path / "graph", image_size=SMALL)
    assert torch.equal(torch.get_rng_state(), state)
