"""Task 3 checks (grader/tasks/inference.py): wrong predictions lose the right points."""

from __future__ import annotations

import pytest
import torch

FULL = {"top1_index": 4.0, "top1_score": 3.0, "return_types": 1.0, "batch": 2.0}

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

# Each wrong implementation: (source appended to inference.py, {failing check: words}).
WRONG = {
    "no_softmax": (NO_SOFTMAX, {"top1_score": "softmax", "batch": "score"}),
    "tensor_types": (TENSOR_TYPES, {"return_types": "score.item()"}),
    "softmax_argmax_wrong_dim": (WRONG_DIM, {"top1_index": "dim=1", "top1_score": "reference",
                                             "return_types": "int(index)"}),
    "reversed_batch": (REVERSED_BATCH, {"batch": "wrong order"}),
}


def test_reference_gets_full_points(grade_impl) -> None:
    graded = grade_impl("reference", tasks=["inference"])
    assert {c.name: c.score for c in graded.results["inference"].checks} == FULL


def test_template_is_not_implemented(grade_impl) -> None:
    graded = grade_impl("student_template", tasks=["inference"])
    assert graded.score("inference") == 0
    for check in graded.results["inference"].checks:
        assert "not implemented yet" in check.message, check


@pytest.mark.parametrize("variant", list(WRONG), ids=list(WRONG))
def test_wrong_implementation_loses_its_points(grade_variant, variant: str) -> None:
    source, failing = WRONG[variant]
    graded = grade_variant({"inference.py": source}, tasks=["inference", "model"])
    assert set(graded.failed("inference")) == set(failing)
    for name, words in failing.items():
        assert words in graded.check("inference", name).message
    assert graded.score("model") == graded.max_score("model")


def test_looping_batch_is_fine(grade_variant) -> None:
    graded = grade_variant({"inference.py": LOOPING_BATCH}, tasks=["inference"])
    assert graded.check("inference", "batch").passed


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
    from grader.checking import CheckContext
    from grader.records import Record
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
