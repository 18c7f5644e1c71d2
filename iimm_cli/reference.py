"""`iimm reference build`: train the reference dual encoder (corpus, checkpoint, model card)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from iimm_cli._common import CliError


def register(sub: Any) -> None:
    """Add the `reference` subcommands."""
    from workers.ml.reference.train import TrainConfig

    ref = sub.add_parser("reference", help="the reference model trained in this repository")
    rsub = ref.add_subparsers(dest="reference_command", required=True)
    b = rsub.add_parser(
        "build",
        help="generate the captioned corpus and train the reference model on CPU "
        "(writes reference-clip.safetensors, reference-clip.json, model-card.{json,md})",
    )
    b.add_argument("--out", required=True, type=Path, help="output directory (created)")
    d = TrainConfig()
    b.add_argument("--seed", type=int, default=d.seed)
    b.add_argument("--images", type=int, default=d.images, help="corpus size (images)")
    b.add_argument("--steps", type=int, default=d.steps, help="optimiser steps")
    b.add_argument("--batch-size", type=int, default=d.batch_size)
    b.add_argument("--lr", type=float, default=d.lr, help="peak AdamW learning rate")
    b.add_argument("--weight-decay", type=float, default=d.weight_decay)
    b.add_argument("--warmup", type=int, default=d.warmup, help="linear warm-up steps")
    b.add_argument("--threads", type=int, default=d.threads, help="torch CPU threads")
    b.add_argument(
        "--eval-per-class", type=int, default=40, help="suite images per class for the card"
    )
    b.set_defaults(handler=run_build)


def run_build(args: argparse.Namespace) -> int:
    """Build the reference model and print where its files went."""
    if args.out.exists() and any(args.out.iterdir()):
        raise CliError(f"output directory {args.out} is not empty")
    for key in ("images", "steps", "batch_size", "threads", "eval_per_class"):
        if getattr(args, key) < 1:
            raise CliError(f"--{key.replace('_', '-')} must be at least 1")
    if args.eval_per_class < 4:
        raise CliError("--eval-per-class must be at least 4 (one test image per class)")
    from workers.ml.reference.build import CARD_MD, build_reference
    from workers.ml.reference.train import TrainConfig

    cfg = TrainConfig(
        seed=args.seed, images=args.images, steps=args.steps, batch_size=args.batch_size,
        lr=args.lr, weight_decay=args.weight_decay, warmup=args.warmup, threads=args.threads,
    )  # fmt: skip
    info = build_reference(
        args.out, cfg, eval_per_class=args.eval_per_class, log=lambda m: print(m, flush=True)
    )
    print(f"\n{args.out / info['weights']}  sha256 {info['sha256']}")
    print(f"model card: {args.out / CARD_MD}")
    return 0
