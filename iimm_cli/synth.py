"""`iimm synth`: write a small synthetic image-classification task as an image folder."""

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
    p.add_argument("--task", required=True, choices=TASKS)
    p.add_argument("--out", required=True, type=Path, help="output directory (created)")
    p.add_argument("--per-class", type=int, default=40, help="images per class (default 40)")
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
    try:
        out = generate_task(
            args.task,
            args.out,
            per_class=args.per_class,
            seed=args.seed,
            size=args.size,
            test_fraction=args.test_fraction,
            classes=args.classes,
        )
    except ValueError as exc:
        raise CliError(str(exc)) from None
    print(out)
    return 0
