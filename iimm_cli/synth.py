"""`iimm synth`: write a small synthetic image-classification task (or a suite) as image folders."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from iimm_cli._common import CliError

TASKS = ("colours", "digits", "glyphs", "orientations", "shapes", "textures")


def register(sub: Any) -> None:
    """Add the `synth` subcommand."""
    p = sub.add_parser(
        "synth",
        help="generate a synthetic image-classification task (OUT/{train,test}/CLASS/*.png)",
    )
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--task", choices=TASKS)
    what.add_argument(
        "--suite",
        choices=("reference",),
        help="every task of a suite, one folder each (reference: the reference model's "
        "13 tasks, seen concepts to never-captioned ones; docs/reference-model.md)",
    )
    p.add_argument("--out", required=True, type=Path, help="output directory (created)")
    p.add_argument(
        "--per-class", type=int, default=None, help="images per class (default 40; suite 80)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=32, help="image side in pixels (default 32)")
    p.add_argument("--test-fraction", type=float, default=0.25)
    p.add_argument("--classes", type=int, default=None, help="keep only the first N classes")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Generate the task and print where it went."""
    from workers.ml.synth import generate_task

    if args.out.exists() and any(args.out.iterdir()):
        raise CliError(f"output directory {args.out} is not empty")
    if args.suite:
        return _suite(args)
    try:
        out = generate_task(
            args.task,
            args.out,
            per_class=args.per_class or 40,
            seed=args.seed,
            size=args.size,
            test_fraction=args.test_fraction,
            classes=args.classes,
        )
    except ValueError as exc:
        raise CliError(str(exc)) from None
    print(out)
    return 0


def _suite(args: argparse.Namespace) -> int:
    from workers.ml.reference.suite import generate_suite

    if args.classes is not None:
        raise CliError("--classes applies to --task only")
    try:
        folders = generate_suite(
            args.out, per_class=args.per_class or 80, seed=args.seed, size=args.size,
            test_fraction=args.test_fraction, progress=lambda name: print(args.out / name),
        )  # fmt: skip
    except ValueError as exc:
        raise CliError(str(exc)) from None
    return 0 if folders else 2
