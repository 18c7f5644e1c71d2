"""`build_reference`: corpus -> training -> checkpoint, architecture JSON and model card."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from workers.ml.reference.card import machine, render_card, sha256_file, zero_shot_table
from workers.ml.reference.corpus import MIX, build_corpus
from workers.ml.reference.suite import generate_suite
from workers.ml.reference.train import ARCH, TrainConfig, create_model, save, train

CARD_JSON, CARD_MD = "model-card.json", "model-card.md"


def rebuild_command(cfg: TrainConfig, out: str) -> str:
    """The `iimm reference build` command line that reproduces `cfg`."""
    defaults, flags = TrainConfig(), []
    for key, value in asdict(cfg).items():
        if value != getattr(defaults, key) or key == "seed":
            flags.append(f"--{key.replace('_', '-')} {value}")
    return " ".join(["iimm reference build --out", out, *flags])


def build_reference(
    out: str | Path,
    cfg: TrainConfig,
    *,
    eval_per_class: int = 40,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Build the reference model into `out`; returns the model card's record.

    Writes ``reference-clip.safetensors``, ``reference-clip.json`` (open_clip architecture),
    ``model-card.json`` and ``model-card.md``. The zero-shot table is measured on the
    reference suite drawn with `eval_per_class` images per class (a quarter of them test).
    """
    out = Path(out)
    log(f"drawing {cfg.images:,} captioned images (seed {cfg.seed}) ...")
    corpus = build_corpus(cfg.images, seed=cfg.seed)
    log(f"training {cfg.steps:,} steps of {cfg.batch_size} on {cfg.threads} thread(s) ...")
    every = max(1, cfg.steps // 40)
    result = train(
        corpus, cfg, log_every=every, progress=lambda s, v: log(f"  step {s:>6}  loss {v:.4f}")
    )
    save(result, out)
    return write_card(out, cfg, result.model, result.losses, result.seconds, eval_per_class)


def write_card(
    out: Path,
    cfg: TrainConfig,
    model: Any,
    losses: list[tuple[int, float]],
    seconds: float,
    eval_per_class: int = 40,
) -> dict[str, Any]:
    """Measure the zero-shot table and write ``model-card.json`` and ``model-card.md``."""
    weights, arch = out / f"{ARCH}.safetensors", out / f"{ARCH}.json"
    tokenizer = create_model(cfg.seed)[2]
    with tempfile.TemporaryDirectory(prefix="iimm-refsuite-") as tmp:
        folders = generate_suite(tmp, per_class=eval_per_class, seed=cfg.seed)
        table = zero_shot_table(model, tokenizer, folders)
    info = {
        "architecture_name": ARCH,
        "architecture": arch.name,
        "weights": weights.name,
        "weights_bytes": weights.stat().st_size,
        "sha256": sha256_file(weights),
        "parameters": sum(p.numel() for p in model.parameters()),
        "command": rebuild_command(cfg, str(out)),
        "train_config": asdict(cfg),
        "corpus_mix": MIX,
        "seconds": round(seconds, 1),
        "machine": machine(),
        "losses": [list(x) for x in losses],
        "zero_shot": table,
        "eval_per_class": eval_per_class,
    }
    (out / CARD_JSON).write_text(json.dumps(info, indent=2) + "\n")
    (out / CARD_MD).write_text(render_card(info))
    return info
