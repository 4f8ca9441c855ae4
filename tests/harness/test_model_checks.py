"""Task 1 checks (grader/tasks/model.py): wrong models and labels lose the right points."""

from __future__ import annotations

import pytest

from grader.tasks import model as task

FULL = {"architecture": 3.0, "eval_mode": 2.0, "weights": 3.0, "labels": 2.0}

# Each wrong implementation: (source appended to model.py, failing checks, words in a message).
WRONG = {
    "missing_eval": (
        "def load_model(device='cpu'):\n"
        "    return models.resnet34(weights=models.ResNet34_Weights.IMAGENET1K_V1).to(device)\n",
        {"eval_mode": "model.eval()"},
    ),
    "resnet18": (
        "def load_model(device='cpu'):\n"
        "    return models.resnet18(weights=None).eval()\n",
        {"architecture": "blocks [2, 2, 2, 2]", "weights": "IMAGENET1K_V1"},
    ),
    "resnet50": (
        "def load_model(device='cpu'):\n"
        "    return models.resnet50(weights=None).eval()\n",
        {"architecture": "Bottleneck", "weights": "IMAGENET1K_V1"},
    ),
    "weights_none": (
        "def load_model(device='cpu'):\n"
        "    return models.resnet34(weights=None).eval()\n",
        {"weights": "weights=None"},
    ),
    "string_keys": (
        "def load_labels(path=None):\n"
        "    cats = models.ResNet34_Weights.IMAGENET1K_V1.meta['categories']\n"
        "    return {str(i): c for i, c in enumerate(cats)}\n",
        {"labels": "int(k)"},
    ),
    "shifted_labels": (
        "def load_labels(path=None):\n"
        "    cats = models.ResNet34_Weights.IMAGENET1K_V1.meta['categories']\n"
        "    return {i: cats[(i + 1) % 1000] for i in range(1000)}\n",
        {"labels": "tench"},
    ),
}


def test_reference_gets_full_points(grade_impl) -> None:
    graded = grade_impl("reference", tasks=["model"])
    assert {c.name: c.score for c in graded.results["model"].checks} == FULL


def test_template_is_not_implemented(grade_impl) -> None:
    graded = grade_impl("student_template", tasks=["model"])
    assert graded.score("model") == 0
    for check in graded.results["model"].checks:
        assert "not implemented yet" in check.message, check


@pytest.mark.parametrize("variant", list(WRONG), ids=list(WRONG))
def test_wrong_implementation_loses_its_points(grade_variant, variant: str) -> None:
    source, failing = WRONG[variant]
    graded = grade_variant({"model.py": source}, tasks=["model", "preprocessing"])
    assert set(graded.failed("model")) == set(failing)
    for name, words in failing.items():
        assert words in graded.check("model", name).message
    for name in set(FULL) - set(failing):
        assert graded.check("model", name).score == FULL[name]
    # Another task's points do not depend on Task 1.
    assert graded.score("preprocessing") == graded.max_score("preprocessing")


def test_labels_path_ignored_style_accepted(grade_variant) -> None:
    """load_labels(path) may return either naming style: underscores or spaces."""
    source = (
        "def load_labels(path=None):\n"
        "    cats = models.ResNet34_Weights.IMAGENET1K_V1.meta['categories']\n"
        "    return dict(enumerate(c.replace(' ', '_') for c in cats))\n"
    )
    graded = grade_variant({"model.py": source}, tasks=["model"])
    assert graded.check("model", "labels").passed


def test_labels_path_failure_costs_half(grade_variant) -> None:
    source = (
        "_orig_load_labels = load_labels\n"
        "def load_labels(path=None):\n"
        "    if path is not None:\n"
        "        raise OSError('no file reading here')\n"
        "    return _orig_load_labels()\n"
    )
    graded = grade_variant({"model.py": source}, tasks=["model"])
    check = graded.check("model", "labels")
    assert check.score == 1.0
    assert "load_labels(path)" in check.message and "OSError" in check.message


HOSTILE_MODELS = {
    "none": ("None", "return the torchvision model"),
    "always_equal": ("type('Eq', (), {'__eq__': lambda s, o: True, '__hash__': lambda s: 0})()",
                     "return the torchvision model"),
    "tensor_subclass": ("type('T', (torch.Tensor,), {})(torch.zeros(3))",
                        "return the torchvision model"),
    # A ResNet subclass reporting a fake state: its methods are never called.
    "lying_resnet": (
        "type('Liar', (models.ResNet,), {'state_dict': lambda s, *a, **k: {}, "
        "'named_modules': lambda s, *a, **k: iter(())})(models.resnet.BasicBlock, [3, 4, 6, 3])",
        "return the torchvision model",
    ),
    # Weights that cannot be read back: the probe records the error instead of crashing.
    "meta_device": ("models.resnet34(weights=None).to('meta').eval()", "could not be inspected"),
}


@pytest.mark.parametrize("value", list(HOSTILE_MODELS), ids=list(HOSTILE_MODELS))
def test_hostile_model_scores_zero(grade_variant, value: str) -> None:
    expression, words = HOSTILE_MODELS[value]
    source = f"def load_model(device='cpu'):\n    return {expression}\n"
    graded = grade_variant({"model.py": source}, tasks=["model"])
    for name in ("architecture", "eval_mode", "weights"):
        check = graded.check("model", name)
        assert check.score == 0 and words in check.message, check


HOSTILE_LABELS = {
    "none": "None",
    "always_equal": "type('Eq', (), {'__eq__': lambda s, o: True, '__hash__': lambda s: 0})()",
    "dict_subclass": (
        "type('D', (dict,), {'__eq__': lambda s, o: True, '__len__': lambda s: 1000})"
        "({0: 'tench', 159: 'Rhodesian ridgeback'})"
    ),
    "nan_values": "{i: float('nan') for i in range(1000)}",
    "tensor": "torch.zeros(1000)",
}


@pytest.mark.parametrize("value", list(HOSTILE_LABELS), ids=list(HOSTILE_LABELS))
def test_hostile_labels_score_zero(grade_variant, value: str) -> None:
    source = f"def load_labels(path=None):\n    return {HOSTILE_LABELS[value]}\n"
    graded = grade_variant({"model.py": source}, tasks=["model"])
    check = graded.check("model", "labels")
    assert check.score == 0
    assert "load_labels()" in check.message


def test_normalize_label_matches_the_template_rule() -> None:
    assert task.normalize_label("Rhodesian_ridgeback") == "rhodesian ridgeback"
    assert task.normalize_label("  Rhodesian   ridgeback ") == "rhodesian ridgeback"
