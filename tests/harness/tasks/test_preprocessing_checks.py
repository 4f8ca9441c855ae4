"""Task 2 checks (grader/tasks/preprocessing.py): wrong pipelines lose the right points."""

from __future__ import annotations

import pytest

from grader.points import checks_of
from grader.settings import DEFAULT_SETTINGS

FULL = {c.name: c.points for c in checks_of("preprocessing")}  # full marks, check by check


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
    "wrong_mean": (
        _compose(RESIZE, CROP, TO_TENSOR, "transforms.Normalize([0.5, 0.5, 0.5], IMAGENET_STD)"),
        {"pipeline_structure": "mean [0.485, 0.456, 0.406]", "output_photos": "differs",
         "output_edge_cases": "differs"},
    ),
    "nearest_interpolation": (
        _compose("transforms.Resize(256, interpolation=transforms.InterpolationMode.NEAREST)",
                 CROP, TO_TENSOR, NORMALIZE),
        {"pipeline_structure": "interpolation", "output_photos": "differs",
         "output_edge_cases": "differs"},
    ),
    "no_normalize": (
        _compose(RESIZE, CROP, TO_TENSOR),
        {"pipeline_structure": "Normalize is missing", "output_photos": "differs",
         "output_edge_cases": "differs"},
    ),
}

V2 = "from torchvision.transforms import v2\n"
# Honest rewrites: the handout's four steps written otherwise; full marks.
HONEST = {
    "v2_to_image_to_dtype": V2 + (
        "transform = v2.Compose([v2.Resize(256), v2.CenterCrop(224), v2.ToImage(), "
        "v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])\n"),
    "v1_pil_to_tensor_convert_dtype": _compose(
        "transforms.Resize(256, antialias=True)", "transforms.CenterCrop((224, 224))",
        "transforms.PILToTensor()", "transforms.ConvertImageDtype(torch.float32)",
        "transforms.Normalize(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))"),
    "v2_squash": V2 + (
        "transform = v2.Compose([v2.Resize((256, 256)), v2.CenterCrop(224), v2.ToImage(), "
        "v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])\n"),
}


@pytest.fixture(params=["practice", "graded"])
def settings(request, graded_test_settings):
    """Both the published practice variant and a graded one."""
    return DEFAULT_SETTINGS if request.param == "practice" else graded_test_settings


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
def test_wrong_pipeline_loses_its_points(grade_variant, variant: str, settings) -> None:
    source, failing = WRONG[variant]
    graded = grade_variant({"preprocessing.py": source}, tasks=["preprocessing", "model"],
                           settings=settings)
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


@pytest.mark.parametrize("rewrite", list(HONEST), ids=list(HONEST))
def test_honest_rewrite_keeps_full_marks(grade_variant, rewrite: str, settings) -> None:
    """transforms.v2 (ToImage + ToDtype(float32, scale=True) for ToTensor) and other spellings
    of the handout's four steps earn every point: the handout allows them (before issue 13 a
    v2 pipeline lost the structure points)."""
    graded = grade_variant({"preprocessing.py": HONEST[rewrite]}, tasks=["preprocessing"],
                           settings=settings)
    assert {c.name: c.score for c in graded.results["preprocessing"].checks} == FULL


LOOKUP = (
    "from grader.settings import DEFAULT_SETTINGS as _PRACTICE_SETTINGS\n"
    "from grader.tasks.preprocessing import build_input as _build, photo_inputs as _inputs\n"
    "_PRACTICE = [_build(d) for d in _inputs(_PRACTICE_SETTINGS)]\n"
    "_orig_preprocess_image = preprocess_image\n"
    "_calls = []\n"
    "def preprocess_image(img):\n"
    "    _calls.append(1)\n"
    "    if len(_calls) <= len(_PRACTICE):\n"
    "        return _orig_preprocess_image(_PRACTICE[len(_calls) - 1])\n"
    "    return _orig_preprocess_image(img)\n"
)


def test_practice_answers_earn_nothing_in_the_graded_variant(grade_variant,
                                                             graded_test_settings) -> None:
    """A preprocess_image answering the photo probes with the practice inputs' outputs."""
    practice = grade_variant({"preprocessing.py": LOOKUP}, tasks=["preprocessing"])
    assert practice.check("preprocessing", "output_photos").passed
    graded = grade_variant({"preprocessing.py": LOOKUP}, tasks=["preprocessing"],
                           settings=graded_test_settings)
    check = graded.check("preprocessing", "output_photos")
    assert check.score == 0 and "differs" in check.message


@pytest.mark.parametrize("settings_name", ["practice", "graded"])
def test_photo_inputs_are_non_square_crops_of_every_photo_in_every_kind(
        settings_name: str, graded_test_settings) -> None:
    from grader.probe.inputs import image_paths
    from grader.tasks.preprocessing import build_input, photo_inputs

    settings = DEFAULT_SETTINGS if settings_name == "practice" else graded_test_settings
    inputs = photo_inputs(settings)
    assert [d["photo"] for d in inputs] == [p.name for p in image_paths("photo")]
    assert {d["kind"] for d in inputs} == {"path", "pil", "array"}
    for desc in inputs:
        image = build_input(desc)
        assert image.mode == "RGB" and image.width != image.height


def test_photo_inputs_differ_between_variants(graded_test_settings) -> None:
    from grader.tasks.preprocessing import photo_inputs

    assert photo_inputs(DEFAULT_SETTINGS) != photo_inputs(graded_test_settings)
