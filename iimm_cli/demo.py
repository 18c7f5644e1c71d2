"""`iimm demo`: the main job on the embedded default.

For now: generate a labelled embedding set shaped like a vision-language model's (class
clusters of images, one text embedding per class, a modality gap between them), and print
every O(n·d) measure with a bootstrap confidence interval for IIMM.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from iimm_cli._common import print_table


def register(sub: Any) -> None:
    """Add the `demo` subcommand."""
    p = sub.add_parser("demo", help="run the main job on a generated embedding set")
    p.add_argument("--n", type=int, default=5000, help="number of images")
    p.add_argument("--classes", type=int, default=10, help="number of classes")
    p.add_argument("--dim", type=int, default=512, help="embedding width")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=run)


def generate_embeddings(
    n: int, k: int, d: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images clustered around class centres, texts near the centres across a modality gap."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d))
    gap = rng.normal(size=d) * 0.8
    labels = rng.integers(0, k, size=n)
    images = centres[labels] + gap + rng.normal(scale=1.5, size=(n, d))
    texts = centres - gap + rng.normal(scale=0.3, size=(k, d))
    return images.astype(np.float16), texts.astype(np.float32), labels


def run(args: argparse.Namespace) -> int:
    """Generate the set, compute the fast family and IIMM's bootstrap interval, print both."""
    from app.measures import compute_measures
    from app.measures.uncertainty import bootstrap_ci

    images, texts, labels = generate_embeddings(args.n, args.classes, args.dim, args.seed)
    print(f"Generated {args.n} image embeddings, {args.classes} classes, d={args.dim}\n")
    values = compute_measures(images, texts, labels)
    print_table([(k, f"{v:.6f}") for k, v in values.items()], ("measure", "value"))
    _, low, high = bootstrap_ci(images, texts, labels, seed=args.seed)["iimm"]
    print(f"\nIIMM 95% bootstrap interval: [{low:.6f}, {high:.6f}]")
    return 0
