"""Tasks 2-3: preprocessing and prediction, the reference beside the handout's code.

Run alone and serially: ``pytest benchmarks --benchmark-only -p no:cacheprovider``.
Each group holds the reference and the handout version of one workload (the 4
fixture photos), so the table shows their ratio. Results are asserted equal; times
never are.

- preprocess: ``reference.preprocessing.preprocess_image`` per photo (EXIF-upright,
  mode-safe loading) vs the handout's ``Image.open`` + ``transform`` per photo.
- predict 1 photo: reference ``predict`` (``inference_mode``) vs the handout's graph
  with autograd on.
- predict 4 photos: reference ``predict_batch`` (one forward pass of 4 rows) vs a
  loop of the handout's single predictions.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from benchmarks import handout
from benchmarks._bench import DEVICES, forward_gflop, model_on, pedantic, report_throughput
from grader.probe.inputs import image_paths
from reference.inference import predict, predict_batch
from reference.model import load_labels
from reference.preprocessing import preprocess_image

IMPLS = ["reference", "handout"]
ROUNDS = 5


def photos() -> list[Path]:
    """The fixture photos (4: grace_hopper, astronaut, chelsea, coffee)."""
    return image_paths("photo")


def preprocess_workload(impl: str, paths: list[Path], device: str = "cpu") -> torch.Tensor:
    """All ``paths`` preprocessed into one ``(N, 3, 224, 224)`` batch on ``device``."""
    if impl == "handout":
        return torch.cat(handout.preprocess_each(paths, device))
    return torch.cat([preprocess_image(p) for p in paths]).to(device)


def predict_workload(impl: str, model: torch.nn.Module, paths: list[Path], labels: dict,
                     device: str = "cpu") -> list[tuple[str, int, float]]:
    """One ``(label, index, score)`` per path; one path uses the single-image API."""
    if impl == "handout":
        return handout.predict_each(model, paths, labels, device)
    if len(paths) == 1:
        return [predict(model, paths[0], labels)]
    return predict_batch(model, paths, labels)


def assert_same_predictions(got: list, expected: list) -> None:
    assert [r[:2] for r in got] == [r[:2] for r in expected]
    for (_, _, score), (_, _, other) in zip(got, expected, strict=True):
        assert score == pytest.approx(other, rel=1e-4, abs=1e-6)


@pytest.fixture(scope="module")
def labels() -> dict[int, str]:
    return load_labels()


@pytest.mark.parametrize("dev", DEVICES)
@pytest.mark.parametrize("impl", IMPLS)
def test_preprocess(benchmark, impl: str, dev: str) -> None:
    paths = photos()
    benchmark.group = f"preprocess {len(paths)} photos [{dev}]"
    got = pedantic(benchmark, preprocess_workload, dev, impl, paths, dev, rounds=ROUNDS, warmup=1)
    other = preprocess_workload("handout" if impl == "reference" else "reference", paths, dev)
    torch.testing.assert_close(got, other, rtol=0, atol=1e-6)
    report_throughput(benchmark, dev, images=len(paths))


@pytest.mark.parametrize("count", [1, 4], ids=["1photo", "4photos"])
@pytest.mark.parametrize("dev", DEVICES)
@pytest.mark.parametrize("impl", IMPLS)
def test_predict(benchmark, trusted_model, labels, impl: str, dev: str, count: int) -> None:
    paths = photos()[:count]
    model = model_on(dev, trusted_model)
    api = "predict" if count == 1 else "predict_batch"
    benchmark.group = f"{api} {count} photo(s) [{dev}]"
    got = pedantic(benchmark, predict_workload, dev, impl, model, paths, labels, dev,
                   rounds=ROUNDS, warmup=1)
    other = predict_workload("handout" if impl == "reference" else "reference", model, paths,
                             labels, dev)
    assert_same_predictions(got, other)
    report_throughput(benchmark, dev, images=count, gflop=count * forward_gflop())
