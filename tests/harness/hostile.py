"""Shared pieces of the per-task hostile-return tests (tests/harness/tasks/test_*_checks.py)."""

from __future__ import annotations

import pytest

# Source prepended to a hostile variant: an object whose == always says True and refuses any
# other use, and a tensor subclass. Appended to a module, so it is text, not classes.
HOSTILE_CLASSES = '''
class _Liar:
    def __eq__(self, other):
        return True

    def __getattr__(self, name):
        raise RuntimeError("the grader must not call me")


class _Sub(torch.Tensor):
    pass
'''


def params(variants: dict, slow: frozenset) -> list:
    """One pytest param per variant name; names in ``slow`` are marked slow."""
    return [pytest.param(name, id=name, marks=[pytest.mark.slow] if name in slow else [])
            for name in variants]
