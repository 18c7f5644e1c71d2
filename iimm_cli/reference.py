"""`iimm reference build`: train the reference dual encoder (corpus, checkpoint, model card)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from iimm_cli._common import CliError

_TRAIN_KEYS = ("seed", "images", "steps", "batch_size", "lr", "weight_decay", "warmup", "threads")


def register(sub: Any) -> None:
    """Add the `reference` subcommands (the training defaults are `TrainConfig`'s, filled in
    by the handler: building the parser must not import torch, every command builds it)."""
    ref = sub.add_parser("reference", help="the reference model trained in this repository")
    rsub = ref.add_subparsers(dest="reference_command", required=True)
    b = rsub.add_parser(
        "build",
        help="generate the captioned corpus and train the reference model on CPU "
        "(writes reference-clip.safetensors, reference-clip.json, model-card.{json,md})",
    )
    b.add_argument("--out", required=True, type=Path, help="output directory (created)")
    b.add_argument("--seed", type=int)
    b.add_argument("--images", type=int, help="corpus size (images)")
    b.add_argument("--steps", type=int, help="optimiser steps")
    b.add_argument("--batch-size", type=int)
    b.add_argument("--lr", type=float, help="peak AdamW learning rate")
    b.add_argument("--weight-decay", type=float)
    b.add_argument("--warmup", type=int, help="linear warm-up steps")
    b.add_argument("--threads", type=int, help="torch CPU threads")
    b.add_argument(
        "--eval-per-class", type=int, default=40, help="suite images per class for the card"
    )
    b.set_defaults(handler=run_build)


def run_build(args: argparse.Namespace) -> int:
    """Build the reference model and print where its files went."""
    from workers.ml.reference.build import CARD_MD, build_reference
    from workers.ml.reference.train import TrainConfig

    defaults = TrainConfig()
    for key in _TRAIN_KEYS:
        if getattr(args, key) is None:
            setattr(args, key, getattr(defaults, key))
    if args.out.exists() and any(args.out.iterdir()):
        raise CliError(f"output directory {args.out} is not empty")
    for key in ("images", "steps", "batch_size", "threads", "eval_per_class"):
        if getattr(args, key) < 1:
            raise CliError(f"--{key.replace('_', '-')} must be at least 1")
    if args.eval_per_class < 4:
        raise CliError("--eval-per-class must be at least 4 (one test image per class)")
    cfg = TrainConfig(**{key: getattr(args, key) for key in _TRAIN_KEYS})
    info = build_reference(
        args.out, cfg, eval_per_class=args.eval_per_class, log=lambda m: print(m, flush=True)
    )
    print(f"\n{args.out / info['weights']}  sha256 {info['sha256']}")
    print(f"model card: {args.out / CARD_MD}")
    return 0
