"""Hidden checks: declared here, left out of the student release whole.

A hidden check runs in ``lab3 grade`` (and Gradescope, "after_published") but not in a
student's ``pytest``: ``lab3 release`` copies the grader without this folder
(:mod:`grader.distribute.release`), and its audit fails a release that still names a hidden check.

Adding a hidden check to ``<task>``:

1. its row in :func:`check_specs` below (``hidden=True``, its points and description);
   :mod:`grader.points` adds these rows to ``CHECKS`` after the task's visible rows;
2. ``grader/hidden/<task>.py``: ``CHECKS = {name: check}`` (merged with the task's own
   ``CHECKS`` by :func:`grader.tasks.task_checks`, the one place) and, when the check needs
   inputs of its own, ``probe(ctx, record)``, run right after the task's ``probe``
   (:func:`grader.tasks.probe_task_record`) and adding to its record;
3. an entry in ``HIDDEN_RECORD_DATA`` in ``grader/distribute/release.py``: the record keys of what that
   probing recorded, stripped from the records the release ships (the build stops without it).

The rows are built by a function, not at import, so that this package and
:mod:`grader.points` may be imported in either order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from grader.points import CheckSpec


def check_specs() -> tuple[CheckSpec, ...]:
    """The hidden rows of the points table (each ``hidden=True``)."""
    from grader.points import CheckSpec

    return (
        CheckSpec("preprocessing", "output_edge_cases", 3,
                  "odd images preprocess like the reference",
                  hidden=True,
                  beyond_handout="alpha, palette and 16-bit images: the handout's "
                                 "preprocess_image only applies transform"),
    )
