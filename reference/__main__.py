"""``python -m reference``: the whole laboratory with the reference solution.

    python -m reference --out DIR [--weights auto|standin|pretrained|PATH]
                        [--device cpu|cuda] [--quick] [--threads N] [--no-progress]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import torch

from grader.refdata.weights import WeightsError, parse_weights_spec


def parse_device(value: str) -> str:
    """argparse type: ``cpu`` or ``cuda[:N]``, the latter only with a visible GPU."""
    try:
        device = torch.device(value)
    except RuntimeError as exc:
        raise argparse.ArgumentTypeError(f"--device {value!r}: {exc}") from exc
    if device.type not in ("cpu", "cuda"):
        raise argparse.ArgumentTypeError(f"--device {value!r}: expected cpu or cuda[:N]")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(
            f"--device {value!r}: torch sees no CUDA GPU here; use --device cpu"
        )
    return value


def parse_threads(value: str) -> int:
    """argparse type: a positive number of threads."""
    try:
        threads = int(value)
    except ValueError:
        threads = 0
    if threads < 1:
        raise argparse.ArgumentTypeError(f"--threads {value!r}: expected a whole number >= 1")
    return threads


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m reference",
        description="Run Laboratory 3 (Tasks 1-9) with the reference solution: one figure "
        "per task and summary.md in --out.",
    )
    group = parser.add_argument_group("lab3 run")
    group.add_argument(
        "--out", dest="out", metavar="DIR", default="out/demo",
        help="output folder, created if missing (default: out/demo)",
    )
    group.add_argument(
        "--weights", dest="weights", metavar="SPEC", type=parse_weights_spec, default="auto",
        help="ResNet-34 weights: auto, standin, pretrained or a checkpoint path "
        "(default: auto)",
    )
    group.add_argument(
        "--device", dest="device", metavar="DEVICE", type=parse_device, default="cpu",
        help="torch device: cpu or cuda[:N] (default: cpu)",
    )
    group.add_argument(
        "--quick", dest="quick", action="store_true",
        help="small settings for a smoke test instead of the handout's (default: off)",
    )
    group.add_argument(
        "--threads", dest="threads", metavar="N", type=parse_threads, default=None,
        help="torch threads; 1 is often much faster on a machine busy with other jobs "
        "(default: torch's, one per core)",
    )
    group.add_argument(
        "--no-progress", dest="progress", action="store_false",
        help="no progress bar on stderr (default: shown)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, run the lab, print where the outputs are; returns the exit status."""
    args = build_parser().parse_args(argv)
    from .lab import run_lab

    try:
        run = run_lab(
            args.out, weights=args.weights, device=args.device, quick=args.quick,
            progress=args.progress, threads=args.threads,
        )
    except WeightsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for name, seconds in run.seconds.items():
        print(f"{seconds:7.1f} s  {name}")
    print(f"{sum(run.seconds.values()):7.1f} s  total; outputs in {run.out_dir}/ "
          "(see summary.md)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
