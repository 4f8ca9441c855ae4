"""The lab3 pytest plugin: options, fixtures and hooks in one module.

Options (group ``lab3``): ``--impl``, ``--weights``, ``--device``, ``--results``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from grader.weights import ResolvedWeights, activate, parse_weights_spec, resolve_weights

_LAB_TESTS = Path(__file__).resolve().parent.parent / "tests" / "lab"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lab3", "lab3 grading")
    group.addoption(
        "--impl",
        dest="lab3_impl",
        metavar="PATH",
        default="reference",
        help="implementation to grade: a package folder, a .zip or a .ipynb "
        "(default: reference)",
    )
    group.addoption(
        "--weights",
        dest="lab3_weights",
        metavar="SPEC",
        type=parse_weights_spec,
        default="auto",
        help="ResNet-34 weights: auto, standin, pretrained or a checkpoint path (default: auto)",
    )
    group.addoption(
        "--device",
        dest="lab3_device",
        metavar="DEVICE",
        default="cpu",
        help="torch device for the implementation under test (default: cpu)",
    )
    group.addoption(
        "--results",
        dest="lab3_results",
        metavar="FILE",
        default=None,
        help="write Gradescope's results.json to FILE (default: not written)",
    )


@pytest.fixture(scope="session")
def resolved_weights(pytestconfig: pytest.Config) -> ResolvedWeights:
    """The weights of this run, activated so torchvision's IMAGENET1K_V1 loads them offline."""
    weights = resolve_weights(pytestconfig.getoption("lab3_weights"))
    activate(weights)
    return weights


@pytest.fixture(scope="session")
def device(pytestconfig: pytest.Config) -> str:
    return pytestconfig.getoption("lab3_device")


@pytest.fixture(scope="session")
def trusted_model(resolved_weights: ResolvedWeights):
    """A torchvision ResNet-34 with the resolved weights, in eval mode. Do not modify it."""
    return resolved_weights.build_model()


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [f"lab3: --impl {config.getoption('lab3_impl')}"]
