"""Task 3 checks (grader/tasks/inference.py): wrong predictions lose the right points."""

from __future__ import annotations

import pytest
import torch

from grader.points import checks_of
from grader.settings import DEFAULT_SETTINGS

FULL = {c.name: c.points for c in checks_of("inference")}  # full marks, check by check

NO_SOFTMAX = (
    "def postprocess(output, labels):\n"
    "    prediction_score, pred_label_idx = torch.topk(output, 1)\n"
    "    pred_label_idx.squeeze_()\n"
    "    return labels[pred_label_idx.item()], pred_label_idx, prediction_score.item()\n"
)
TENSOR_TYPES = (
    "def predict(model, img, labels):\n"
    "    with torch.no_grad():\n"
    "        probs = F.softmax(model(preprocess_image(img)), dim=1)\n"
    "    score, index = probs.max(dim=1)\n"
    "    return labels[int(index)], index[0], score[0]\n"
)
WRONG_DIM = (
    "def predict(model, img, labels):\n"
    "    with torch.no_grad():\n"
    "        output = model(preprocess_image(img))\n"
    "    score, index = F.softmax(output, dim=0).max(dim=0)\n"
    "    return labels[int(index[0])], index, float(score[0])\n"
)
REVERSED_BATCH = (
    "_orig_predict_batch = predict_batch\n"
    "def predict_batch(model, imgs, labels):\n"
    "    return _orig_predict_batch(model, imgs, labels)[::-1]\n"
)
LOOPING_BATCH = (
    "def predict_batch(model, imgs, labels):\n"
    "    return [predict(model, img, labels) for img in imgs]\n"
)
# A model of their own instead of the `model` argument (the trusted weights, as a student's
# load_model() would give them).
OWN_MODEL = (
    "def _own_model():\n"
    "    from grader.refdata.weights import resolve_weights\n"
    "    return resolve_weights().build_model()\n"
)
IGNORES_MODEL = OWN_MODEL + (
    "_orig_predict = predict\n"
    "def predict(model, img, labels):\n"
    "    return _orig_predict(_own_model(), img, labels)\n"
)
IGNORES_LABELS = (
    "_orig_predict = predict\n"
    "def predict(model, img, labels):\n"
    "    from torchvision.models import ResNet34_Weights\n"
    "    return _orig_predict(model, img, dict(enumerate(ResNet34_Weights.DEFAULT.meta['categories'])))\n"
)
BATCH_IGNORES_MODEL = OWN_MODEL + (
    "_orig_predict_batch = predict_batch\n"
    "def predict_batch(model, imgs, labels):\n"
    "    return _orig_predict_batch(_own_model(), imgs, labels)\n"
)
BATCH_IGNORES_LABELS = (
    "_orig_predict_batch = predict_batch\n"
    "def predict_batch(model, imgs, labels):\n"
    "    from torchvision.models import ResNet34_Weights\n"
    "    names = dict(enumerate(ResNet34_Weights.DEFAULT.meta['categories']))\n"
    "    return _orig_predict_batch(model, imgs, names)\n"
)

# Each wrong implementation: (source appended to inference.py, {failing check: words}).
WRONG = {
    "no_softmax": (NO_SOFTMAX, {"top1_score": "softmax", "batch": "score"}),
    "tensor_types": (TENSOR_TYPES, {"return_types": "score.item()"}),
    "softmax_argmax_wrong_dim": (WRONG_DIM, {"top1_index": "dim=1", "top1_score": "reference",
                                             "return_types": "int(index)"}),
    "reversed_batch": (REVERSED_BATCH, {"batch": "wrong order"}),
    # model: the variant's model has its classes reordered, so the student's own model's
    # top-1 is another index (its softmax maximum is the same: the score pays with the class).
    "predict_ignores_model": (IGNORES_MODEL, {"top1_index": "reference predicts",
                                              "top1_score": "index is not the reference's",
                                              "return_types": "top1_index"}),
    # labels: the variant's names are torchvision's in another order.
    "predict_ignores_labels": (IGNORES_LABELS, {"top1_index": "return labels[index]",
                                                "return_types": "top1_index"}),
    # predict_batch: a loop of predict gives the right results in four passes.
    "batch_loop": (LOOPING_BATCH, {"batch": "4 forward passes"}),
    "batch_ignores_model": (BATCH_IGNORES_MODEL, {"batch": "reference predicts"}),
    "batch_ignores_labels": (BATCH_IGNORES_LABELS, {"batch": "return labels[index]"}),
}

# Honest rewrites: other code, the same behaviour; full marks.
HONEST = {
    "argmax_then_softmax": (
        "def predict(model, img, labels):\n"
        "    with torch.no_grad():\n"
        "        logits = model(preprocess_image(img))\n"
        "    index = int(logits.argmax(dim=1))\n"
        "    score = float(torch.softmax(logits, dim=1)[0, index])\n"
        "    return labels[index], index, score\n"
    ),
    "batch_stacked_forward_method": (
        "def predict_batch(model, imgs, labels):\n"
        "    x = torch.stack([preprocess_image(img)[0] for img in imgs])\n"
        "    with torch.no_grad():\n"
        "        probs = F.softmax(model.forward(x), dim=1)\n"
        "    scores, indices = probs.max(dim=1)\n"
        "    return [(labels[int(i)], int(i), float(p)) for p, i in zip(scores, indices)]\n"
    ),
}


@pytest.fixture(params=["practice", "graded"])
def settings(request, graded_test_settings):
    """Both the published practice variant and a graded one."""
    return DEFAULT_SETTINGS if request.param == "practice" else graded_test_settings


def test_reference_gets_full_points(grade_impl) -> None:
    graded = grade_impl("reference", tasks=["inference"])
    assert {c.name: c.score for c in graded.results["inference"].checks} == FULL


def test_template_is_not_implemented(grade_impl) -> None:
    graded = grade_impl("student_template", tasks=["inference"])
    assert graded.score("inference") == 0
    for check in graded.results["inference"].checks:
        assert "not implemented yet" in check.message, check


@pytest.mark.parametrize("variant", list(WRONG), ids=list(WRONG))
def test_wrong_implementation_loses_its_points(grade_variant, variant: str, settings) -> None:
    source, failing = WRONG[variant]
    graded = grade_variant({"inference.py": source}, tasks=["inference", "model"],
                           settings=settings)
    assert set(graded.failed("inference")) == set(failing)
    for name, words in failing.items():
        assert words in graded.check("inference", name).message
    assert graded.score("model") == graded.max_score("model")


@pytest.mark.parametrize("rewrite", list(HONEST), ids=list(HONEST))
def test_honest_rewrite_keeps_full_marks(grade_variant, rewrite: str, settings) -> None:
    graded = grade_variant({"inference.py": HONEST[rewrite]}, tasks=["inference"],
                           settings=settings)
    assert {c.name: c.score for c in graded.results["inference"].checks} == FULL


def test_looping_batch_earns_nothing_for_batch(grade_variant) -> None:
    """Stricter by issue 13 (was: a loop is fine): predict_batch runs one forward pass."""
    graded = grade_variant({"inference.py": LOOPING_BATCH}, tasks=["inference"])
    check = graded.check("inference", "batch")
    assert check.score == 0 and "rows per pass: [1, 1, 1, 1]" in check.message
    assert graded.records["inference"].data["batch"]["forward_rows"] == [1, 1, 1, 1]


def test_reference_batch_is_one_pass_of_all_photos(grade_impl) -> None:
    graded = grade_impl("reference", tasks=["inference"])
    assert graded.records["inference"].data["batch"]["forward_rows"] == [4]


@pytest.mark.parametrize("settings_name", ["practice", "graded"])
def test_variant_models_and_labels_move_every_class(settings_name, graded_test_settings) -> None:
    """The premise of the model and labels probes: no class keeps its index or its name."""
    from grader.tasks.inference import _categories, variant_inputs

    settings = DEFAULT_SETTINGS if settings_name == "practice" else graded_test_settings
    setup = variant_inputs(settings)
    for perm in setup["perms"]:
        assert sorted(perm) == list(range(1000))
        assert all(perm[j] != j for j in range(1000))
    for names in setup["label_sets"]:
        assert sorted(names) == sorted(_categories())
        assert sum(a == b for a, b in zip(names, _categories(), strict=True)) <= 2
    assert setup["perms"][0] != setup["perms"][1]
    models = {m for m, _ in setup["calls"]} | {setup["batch"][0]}
    labels = {lab for _, lab in setup["calls"]} | {setup["batch"][1]}
    assert models == labels == {0, 1}


def test_variants_differ(graded_test_settings) -> None:
    from grader.tasks.inference import variant_inputs

    assert variant_inputs(DEFAULT_SETTINGS) != variant_inputs(graded_test_settings)


def test_handout_tensor_index_earns_the_point_with_a_note(grade_variant) -> None:
    """The handout's postprocess returns the index as a 0-d tensor: accepted, with a hint."""
    source = (
        "def predict(model, img, labels):\n"
        "    with torch.no_grad():\n"
        "        return postprocess(model(preprocess_image(img)), labels)\n"
    )
    graded = grade_variant({"inference.py": source}, tasks=["inference"])
    check = graded.check("inference", "return_types")
    assert check.passed and "int(index)" in check.message
    assert graded.check("inference", "top1_index").passed


HOSTILE = {
    "none": ("None", "return (label, index, score)"),
    "always_equal": ("type('Eq', (), {'__eq__': lambda s, o: True})()",
                     "return (label, index, score)"),
    "nan_score": ("(labels[0], 0, float('nan'))", "score"),
    "nan_tensor_index": ("('x', torch.tensor(float('nan')), 0.5)", "int(index)"),
    "tensor_subclass_index": (
        "('x', type('T', (torch.Tensor,), {'__eq__': lambda s, o: True})(torch.tensor(1)), 0.5)",
        "int(index)",
    ),
    "wrong_length": ("('x', 1)", "length 2"),
    "lying_str_label": (
        "(type('S', (str,), {'__eq__': lambda s, o: True})('nope'), 37, 0.5)", "label"),
}


@pytest.mark.parametrize("value", list(HOSTILE), ids=list(HOSTILE))
def test_hostile_result_loses_points(grade_variant, value: str) -> None:
    expression, words = HOSTILE[value]
    source = (f"def predict(model, img, labels):\n    return {expression}\n"
              f"def predict_batch(model, imgs, labels):\n    return [{expression}] * len(imgs)\n")
    graded = grade_variant({"inference.py": source}, tasks=["inference"])
    assert graded.score("inference") < graded.max_score("inference")
    assert not graded.check("inference", "top1_index").passed
    assert not graded.check("inference", "batch").passed
    messages = " ".join(c.message for c in graded.results["inference"].checks)
    assert words in messages


@pytest.mark.parametrize("value", ["None", "'not a list'", "[None] * len(imgs)"],
                         ids=["none", "str", "nones"])
def test_hostile_batch_fails_batch(grade_variant, value: str) -> None:
    source = f"def predict_batch(model, imgs, labels):\n    return {value}\n"
    graded = grade_variant({"inference.py": source}, tasks=["inference"])
    assert graded.failed("inference") == ["batch"]


# Error carried forward: predict is judged on the preprocessing it was given.
WRONG_STD = ("transform = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), "
             "transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, [0.5, 0.5, 0.5])])\n")
SQUASHED = ("transform = transforms.Compose([transforms.Resize((256, 256)), "
            "transforms.CenterCrop(224), transforms.ToTensor(), "
            "transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])\n")
OWN_PIPELINE_IN_PREDICT = (
    "def predict(model, img, labels):\n"
    "    x = transforms.ToTensor()(load_image(img).resize((224, 224))).unsqueeze(0)\n"
    "    with torch.no_grad():\n"
    "        probs = F.softmax(model(x), dim=1)\n"
    "    score, index = probs.max(dim=1)\n"
    "    return labels[int(index)], int(index), float(score)\n"
)


@pytest.mark.parametrize("transform", [WRONG_STD, SQUASHED], ids=["wrong_std", "squashed"])
def test_a_preprocessing_mistake_costs_no_task_3_points(grade_variant, transform: str) -> None:
    graded = grade_variant({"preprocessing.py": transform}, tasks=["inference"])
    assert {c.name: c.score for c in graded.results["inference"].checks} == FULL
    assert "own preprocessing" in graded.check("inference", "top1_score").message


def test_predict_that_bypasses_the_preprocessing_still_loses_points(grade_variant) -> None:
    source = ("from torchvision import transforms\nfrom .preprocessing import load_image\n"
              + OWN_PIPELINE_IN_PREDICT)
    graded = grade_variant({"inference.py": source}, tasks=["inference"])
    assert "top1_score" in graded.failed("inference")
    assert "reference's" in graded.check("inference", "top1_score").message


def test_own_predictions_run_the_trusted_model_once_per_photo(resolved_weights) -> None:
    from grader.check.checking import CheckContext
    from grader.probe.records import Record
    from grader.tasks.inference import own_predictions

    class CountingModel(torch.nn.Module):
        calls = 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            CountingModel.calls += 1
            return torch.arange(1000.0).expand(x.shape[0], 1000)

    ctx = CheckContext(weights=resolved_weights, _model=CountingModel())
    record = Record(task="inference", data={"own_inputs": [True, True, False]},
                    tensors={"own_input_0": torch.zeros(1, 3, 64, 64),
                             "own_input_1": torch.zeros(3, 64, 64)})
    first = own_predictions(record, ctx)
    again = own_predictions(record, ctx)  # what the score and batch checks ask next
    assert first == again and [p and p["index"] for p in first] == [999, 999, None]
    assert CountingModel.calls == 2
