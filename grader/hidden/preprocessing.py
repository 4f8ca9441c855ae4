"""Task 2's hidden check: odd images (grader/hidden/__init__.py declares its row).

Probe
    After the task's own probe (:func:`grader.tasks.preprocessing.probe`): calls
    ``preprocess_image`` once per edge fixture (grayscale, RGBA, palette, 16-bit, tiny,
    large, EXIF-rotated, CMYK, ...) and once with a numpy ``(H, W, 3)`` uint8 array made
    from a photo the variant chooses. They catch loaders that drop alpha onto black, clip
    16-bit images or ignore EXIF orientation. Recorded under ``edges`` (the inputs' names)
    and ``edge_<i>`` (calls and tensors): ``grader/distribute/release.py`` strips both from the
    records a release ships.

Check
    The outputs equal the reference's, as Task 2's photo outputs do (the same comparison,
    the Resize((256, 256)) rule included: :func:`grader.tasks.preprocessing.compare_outputs`).
"""

from __future__ import annotations

from typing import Any

from grader.check.checking import CheckContext, Outcome
from grader.probe.inputs import image_paths
from grader.probe.probing import ProbeContext, call, put_tensor
from grader.probe.records import Record
from grader.tasks.preprocessing import ARRAY_PREFIX, array_input, compare_outputs


def probe(ctx: ProbeContext, record: Record) -> None:
    """The hidden check's inputs, added to the task's ``record``."""
    mod = ctx.module("preprocessing")
    photo = ctx.settings.rng("preprocessing-edges").choice(image_paths("photo"))
    edges: list[tuple[str, Any]] = [(p.name, str(p)) for p in image_paths("edge")]
    edges.append((ARRAY_PREFIX + photo.name, array_input(photo)))
    record.data["edges"] = [name for name, _ in edges]
    for i, (_, source) in enumerate(edges):
        out = call(record, f"edge_{i}", mod.preprocess_image, source)
        put_tensor(record, f"edge_{i}", out)


def check_output_edge_cases(student: Record, reference: Record, ctx: CheckContext) -> Outcome:
    return compare_outputs(student, reference, "edges", "edge", ctx)


CHECKS = {
    "output_edge_cases": check_output_edge_cases,
}
