"""Task 1 checks (grader/tasks/model.py): wrong models and labels lose the right points."""

from __future__ import annotations

import pytest

from grader.points import checks_of
from grader.settings import DEFAULT_SETTINGS
from grader.tasks import model as task

FULL = {c.name: c.points for c in checks_of("model")}  # full marks, check by check

# Each wrong implementation: (source appended to model.py, failing checks, words in a message).
WRONG = {
    "missing_eval": (
        "def load_model(device='cpu'):\n"
        "    return models.resnet34(weights=models.ResNet34_Weights.IMAGENET1K_V1).to(device)\n",
        {"eval_mode": "model.eval()"},
    ),
    "resnet18": (
        "def load_model(device='cpu'):\n"
        "    return models.resnet18(weights=None).eval().to(device)\n",
        {"architecture": "blocks [2, 2, 2, 2]", "weights": "IMAGENET1K_V1"},
    ),
    "resnet50": (
        "def load_model(device='cpu'):\n"
        "    return models.resnet50(weights=None).eval().to(device)\n",
        {"architecture": "Bottleneck", "weights": "IMAGENET1K_V1"},
    ),
    "weights_none": (
        "def load_model(device='cpu'):\n"
        "    return models.resnet34(weights=None).eval().to(device)\n",
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
    # device: a model that stays on the CPU whatever `device` says.
    "device_ignored": (
        "def load_model(device='cpu'):\n"
        "    return models.resnet34(weights=models.ResNet34_Weights.IMAGENET1K_V1).eval()\n",
        {"eval_mode": "model.to(device)"},
    ),
    # path: torchvision's names whatever the file says.
    "labels_path_ignored": (
        "def load_labels(path=None):\n"
        "    cats = models.ResNet34_Weights.IMAGENET1K_V1.meta['categories']\n"
        "    return dict(enumerate(c.replace(' ', '_') for c in cats))\n",
        {"labels": "the file's names"},
    ),
    # path: the WordNet ids (v[0]) instead of the names (v[1]).
    "labels_path_wordnet_ids": (
        "_orig_load_labels = load_labels\n"
        "def load_labels(path=None):\n"
        "    if path is None:\n"
        "        return _orig_load_labels()\n"
        "    with open(path) as f:\n"
        "        return {int(k): v[0] for k, v in json.load(f).items()}\n",
        {"labels": "the file's names"},
    ),
    # path: the values in file order, the keys ignored (the second file's keys are shuffled).
    "labels_path_keys_ignored": (
        "_orig_load_labels = load_labels\n"
        "def load_labels(path=None):\n"
        "    if path is None:\n"
        "        return _orig_load_labels()\n"
        "    with open(path) as f:\n"
        "        return dict(enumerate(v[1] for v in json.load(f).values()))\n",
        {"labels": "model_labels_1.json"},
    ),
    # path: the first file read is cached and returned for every later path.
    "labels_path_cached": (
        "_orig_load_labels = load_labels\n"
        "_CACHE = {}\n"
        "def load_labels(path=None):\n"
        "    if path is None:\n"
        "        return _orig_load_labels()\n"
        "    if 'labels' not in _CACHE:\n"
        "        _CACHE['labels'] = _orig_load_labels(path)\n"
        "    return dict(_CACHE['labels'])\n",
        {"labels": "model_labels_1.json"},
    ),
}

# Honest rewrites: other code, the same behaviour; full marks.
HONEST = {
    "model_to_device_then_eval": (
        "def load_model(device='cpu'):\n"
        "    model = models.resnet34(weights='IMAGENET1K_V1')\n"
        "    model.to(torch.device(device))\n"
        "    model.eval()\n"
        "    return model\n"
    ),
    "handout_label_code_with_spaces": (
        "from pathlib import Path\n"
        "def load_labels(path=None):\n"
        "    if path is None:\n"
        "        return dict(enumerate(models.ResNet34_Weights.DEFAULT.meta['categories']))\n"
        "    labels = json.loads(Path(path).read_text())\n"
        "    return {int(k): v[1].replace('_', ' ') for k, v in labels.items()}\n"
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


@pytest.fixture(params=["practice", "graded"])
def settings(request, graded_test_settings):
    """Both the published practice variant and a graded one."""
    return DEFAULT_SETTINGS if request.param == "practice" else graded_test_settings


@pytest.mark.parametrize("variant", list(WRONG), ids=list(WRONG))
def test_wrong_implementation_loses_its_points(grade_variant, variant: str, settings) -> None:
    source, failing = WRONG[variant]
    graded = grade_variant({"model.py": source}, tasks=["model", "preprocessing"],
                           settings=settings)
    assert set(graded.failed("model")) == set(failing)
    for name, words in failing.items():
        assert words in graded.check("model", name).message
    for name in set(FULL) - set(failing):
        assert graded.check("model", name).score == FULL[name]
    # Another task's points do not depend on Task 1.
    assert graded.score("preprocessing") == graded.max_score("preprocessing")


@pytest.mark.parametrize("rewrite", list(HONEST), ids=list(HONEST))
def test_honest_rewrite_keeps_full_marks(grade_variant, rewrite: str, settings) -> None:
    graded = grade_variant({"model.py": HONEST[rewrite]}, tasks=["model"], settings=settings)
    assert {c.name: c.score for c in graded.results["model"].checks} == FULL


def test_labels_without_path_may_use_underscores(grade_variant) -> None:
    """load_labels() may return either naming style: underscores or spaces."""
    source = (
        "_orig_load_labels = load_labels\n"
        "def load_labels(path=None):\n"
        "    if path is not None:\n"
        "        return _orig_load_labels(path)\n"
        "    cats = models.ResNet34_Weights.IMAGENET1K_V1.meta['categories']\n"
        "    return dict(enumerate(c.replace(' ', '_') for c in cats))\n"
    )
    graded = grade_variant({"model.py": source}, tasks=["model"])
    assert graded.check("model", "labels").passed


def test_practice_label_files_earn_nothing_in_the_graded_variant(
        grade_variant, graded_test_settings) -> None:
    """A load_labels(path) that returns the practice files' names (looked up, not read)."""
    files = task.label_files(DEFAULT_SETTINGS.rng("model"))
    source = (
        f"_PRACTICE = {[{int(k): v[1] for k, v in f.items()} for f in files]!r}\n"
        "_orig_load_labels = load_labels\n"
        "_seen = []\n"
        "def load_labels(path=None):\n"
        "    if path is None:\n"
        "        return _orig_load_labels()\n"
        "    _seen.append(path)\n"
        "    return dict(_PRACTICE[(len(_seen) - 1) % 2])\n"
    )
    assert grade_variant({"model.py": source}, tasks=["model"]).check("model", "labels").passed
    graded = grade_variant({"model.py": source}, tasks=["model"], settings=graded_test_settings)
    check = graded.check("model", "labels")
    assert check.score == 1.0 and "the file's names" in check.message


@pytest.mark.parametrize("settings_name", ["practice", "graded"])
def test_label_files_hold_torchvision_names_in_another_order(
        settings_name: str, graded_test_settings) -> None:
    """Ignoring the file gets (almost) every name wrong: the premise of the path probe."""
    settings = DEFAULT_SETTINGS if settings_name == "practice" else graded_test_settings
    from torchvision.models import ResNet34_Weights

    torchvision_names = [task.normalize_label(c)
                         for c in ResNet34_Weights.IMAGENET1K_V1.meta["categories"]]
    files = task.label_files(settings.rng("model"))
    assert len(files) == 2
    for raw in files:
        names = [task.normalize_label(raw[str(i)][1]) for i in range(1000)]
        assert sorted(names) == sorted(torchvision_names)
        assert sum(a != b for a, b in zip(names, torchvision_names, strict=True)) > 900
    assert list(files[1]) != sorted(files[1], key=int)  # keys listed out of order


def test_label_files_differ_between_variants(graded_test_settings) -> None:
    assert task.label_files(DEFAULT_SETTINGS.rng("model")) != task.label_files(
        graded_test_settings.rng("model"))


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
