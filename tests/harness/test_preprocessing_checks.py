"""Task 2 checks (grader/tasks/preprocessing.py): wrong pipelines lose the right points."""

from __future__ import annotations

import pytest

FULL = {"pipeline_structure": 4.0, "output_photos": 5.0, "output_edge_cases": 3.0}


def _compose(*steps: str) -> str:
    return "transform = transforms.Compose([" + ", ".join(steps) + "])\n"


RESIZE = "transforms.Resize(256)"
CROP = "transforms.CenterCrop(224)"
TO_TENSOR = "transforms.ToTensor()"
NORMALIZE = "transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)"

# Each wrong pipeline: (source appended to preprocessing.py, {failing check: words in message}).
WRONG = {
    "wrong_std": (
        _compose(RESIZE, CROP, TO_TENSOR, "transforms.Normalize(IMAGENET_MEAN, [0.5, 0.5, 0.5])"),
        {"pipeline_structure": "std [0.229, 0.224, 0.225]", "output_photos": "differs",
         "output_edge_cases": "differs"},
    ),
    "missing_center_crop": (
        _compose(RESIZE, TO_TENSOR, NORMALIZE),
        {"pipeline_structure": "CenterCrop is missing", "output_photos": "shape",
         "output_edge_cases": "shape"},
    ),
    "wrong_order": (
        _compose(CROP, RESIZE, TO_TENSOR, NORMALIZE),
        {"pipeline_structure": "in this order", "output_photos": "shape",
         "output_edge_cases": "shape"},
    ),
    "resize_224": (
        _compose("transforms.Resize(224)", CROP, TO_TENSOR, NORMALIZE),
        {"pipeline_structure": "use Resize(256)", "output_photos": "differs",
         "output_edge_cases": "differs"},
    ),
    "squash_with_wrong_std": (
        _compose("transforms.Resize((256, 256))", CROP, TO_TENSOR,
                 "transforms.Normalize(IMAGENET_MEAN, [0.5, 0.5, 0.5])"),
        {"pipeline_structure": "Resize((256, 256)): squashes",
         "output_photos": "Resize((256, 256)) pipeline",
         "output_edge_cases": "Resize((256, 256)) pipeline"},
    ),
}


def test_reference_gets_full_points(grade_impl) -> None:
    graded = grade_impl("reference", tasks=["preprocessing"])
    assert {c.name: c.score for c in graded.results["preprocessing"].checks} == FULL
    assert "Resize(256): keeps the aspect ratio" in graded.check(
        "preprocessing", "pipeline_structure").message


def test_template_is_not_implemented(grade_impl) -> None:
    graded = grade_impl("student_template", tasks=["preprocessing"])
    assert graded.score("preprocessing") == 0
    for check in graded.results["preprocessing"].checks:
        assert "not implemented yet" in check.message, check


@pytest.mark.parametrize("variant", list(WRONG), ids=list(WRONG))
def test_wrong_pipeline_loses_its_points(grade_variant, variant: str) -> None:
    source, failing = WRONG[variant]
    graded = grade_variant({"preprocessing.py": source}, tasks=["preprocessing", "model"])
    assert set(graded.failed("preprocessing")) == set(failing)
    for name, words in failing.items():
        assert words in graded.check("preprocessing", name).message
    assert graded.score("model") == graded.max_score("model")


def test_wrong_std_keeps_three_quarters_of_structure(grade_variant) -> None:
    graded = grade_variant({"preprocessing.py": WRONG["wrong_std"][0]}, tasks=["preprocessing"])
    assert graded.check("preprocessing", "pipeline_structure").score == 3.0


def test_squash_resize_earns_every_point(grade_variant) -> None:
    """Resize((256, 256)) is a fair reading of the handout: structure and outputs pass, the
    outputs compared with what that pipeline must produce (computed by the grader)."""
    source = _compose("transforms.Resize((256, 256))", CROP, TO_TENSOR, NORMALIZE)
    graded = grade_variant({"preprocessing.py": source}, tasks=["preprocessing"])
    assert {c.name: c.score for c in graded.results["preprocessing"].checks} == FULL
    structure = graded.check("preprocessing", "pipeline_structure").message
    assert "Resize((256, 256)): squashes" in structure
    photos = graded.check("preprocessing", "output_photos").message
    assert "Resize((256, 256)) pipeline" in photos and "not compared" not in photos


def test_squash_outputs_really_differ_from_the_reference(grade_variant, reference_records) -> None:
    """The squash rule is not vacuous: the photos are non-square, so outputs differ."""
    source = _compose("transforms.Resize((256, 256))", CROP, TO_TENSOR, NORMALIZE)
    graded = grade_variant({"preprocessing.py": source}, tasks=["preprocessing"])
    student, ref = graded.records["preprocessing"], reference_records["preprocessing"]
    differing = [
        name for i, name in enumerate(ref.data["photos"])
        if not student.tensors[f"photo_{i}"].allclose(ref.tensors[f"photo_{i}"], atol=1e-3)
    ]
    assert len(differing) >= 3


HOSTILE_OUTPUTS = {
    "none": ("None", "returned builtins.NoneType"),
    "always_equal": ("type('Eq', (), {'__eq__': lambda s, o: True})()", "return a torch.Tensor"),
    "tensor_subclass": ("type('T', (torch.Tensor,), {})(torch.zeros(1, 3, 224, 224))",
                        "return a torch.Tensor"),
    "nan_tensor": ("torch.full((1, 3, 224, 224), float('nan'))", "NaN"),
    "wrong_shape": ("torch.zeros(3, 224, 224)", "shape (3, 224, 224)"),
    "float64": ("torch.zeros(1, 3, 224, 224, dtype=torch.float64)", "float32"),
    "numpy": ("np.zeros((1, 3, 224, 224), dtype=np.float32)", "numpy array"),
}


@pytest.mark.parametrize("value", list(HOSTILE_OUTPUTS), ids=list(HOSTILE_OUTPUTS))
def test_hostile_output_scores_zero(grade_variant, value: str) -> None:
    expression, words = HOSTILE_OUTPUTS[value]
    source = f"def preprocess_image(img):\n    return {expression}\n"
    graded = grade_variant({"preprocessing.py": source}, tasks=["preprocessing"])
    for name in ("output_photos", "output_edge_cases"):
        check = graded.check("preprocessing", name)
        assert check.score == 0 and words in check.message, check


HOSTILE_TRANSFORMS = {
    "lambda": ("lambda img: img", "make it torchvision.transforms.Compose"),
    "compose_subclass": (
        "type('C', (transforms.Compose,), {'__eq__': lambda s, o: True})([])",
        "make it torchvision.transforms.Compose",
    ),
    "lying_steps": (
        "transforms.Compose([type('Resize', (transforms.Resize,), {})(256), "
        "transforms.CenterCrop(224), transforms.ToTensor(), "
        "transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])",
        "Resize is missing",
    ),
}


@pytest.mark.parametrize("value", list(HOSTILE_TRANSFORMS), ids=list(HOSTILE_TRANSFORMS))
def test_hostile_transform_loses_structure(grade_variant, value: str) -> None:
    expression, words = HOSTILE_TRANSFORMS[value]
    graded = grade_variant({"preprocessing.py": f"transform = {expression}\n"},
                           tasks=["preprocessing"])
    check = graded.check("preprocessing", "pipeline_structure")
    assert not check.passed and words in check.message, check


def test_v2_pipeline_loses_only_structure(grade_variant) -> None:
    """transforms.v2 is not what the handout asks for (structure), but computes the same."""
    source = (
        "from torchvision.transforms import v2\n"
        "transform = v2.Compose([v2.Resize(256), v2.CenterCrop(224), v2.ToImage(), "
        "v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])\n"
    )
    graded = grade_variant({"preprocessing.py": source}, tasks=["preprocessing"])
    assert graded.failed("preprocessing") == ["pipeline_structure"]
    assert "make it torchvision.transforms.Compose" in graded.check(
        "preprocessing", "pipeline_structure").message
