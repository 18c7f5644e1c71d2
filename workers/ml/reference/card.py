"""Zero-shot evaluation of a reference checkpoint on the suite, and its model card (Markdown)."""

from __future__ import annotations

import hashlib
import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from workers.ml.reference.suite import SUITE, TEMPLATE
from workers.ml.reference.train import normalise
from workers.ml.zeroshot import topk_predictions, zero_shot_metrics


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_split(folder: Path, split: str, classes: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Images (n, h, w, 3) uint8 and labels (n,) of one split of a suite folder."""
    images, labels = [], []
    for label, name in enumerate(classes):
        for p in sorted((folder / split / name.replace(" ", "_")).glob("*.png")):
            images.append(np.asarray(Image.open(p).convert("RGB")))
            labels.append(label)
    return np.stack(images), np.asarray(labels)


@torch.inference_mode()
def zero_shot_table(
    model: torch.nn.Module, tokenizer: Any, folders: dict[str, Path]
) -> list[dict[str, Any]]:
    """Top-1 zero-shot accuracy on each suite task's test split with the prompt TEMPLATE.

    Rows: task, group, classes, n, top1, chance (1/k), in suite order.
    """
    rows = []
    for task in SUITE:
        if task.name not in folders:
            continue
        images, labels = read_split(folders[task.name], "test", task.classes)
        x = model.encode_image(normalise(images), normalize=True).numpy()
        prompts = [TEMPLATE.format(c=c) for c in task.classes]
        t = model.encode_text(tokenizer(prompts), normalize=True).numpy()
        m = zero_shot_metrics(topk_predictions(x, t), labels, len(task.classes))
        k = len(task.classes)
        rows.append({
            "task": task.name, "group": task.group, "classes": k, "n": len(labels),
            "top1": round(m["top1"], 3), "chance": round(1 / k, 3),
        })  # fmt: skip
    return rows


def render_card(info: dict[str, Any]) -> str:
    """The model card in Markdown from the build's record (`model-card.json`)."""
    cfg = info["train_config"]
    lines = [
        "# Reference model card",
        "",
        f"open_clip `{info['architecture_name']}` architecture (`tiny-clip.json`, "
        f"{info['parameters'] / 1e6:.2f} M parameters), trained from scratch in this repository "
        "with open_clip's `ClipLoss` on generated captioned images. It exists so that the "
        "service's numbers mean something offline; it is not a general-purpose model.",
        "",
        f"- rebuild: `{info['command']}`",
        f"- checkpoint: `{info['weights']}`, {info['weights_bytes'] / 1e6:.1f} MB, "
        f"SHA-256 `{info['sha256']}`",
        f"- corpus: {cfg['images']:,} images of 32 px, 3 captions each (seed {cfg['seed']}); "
        "kinds: " + ", ".join(f"{k} {v:.0%}" for k, v in info["corpus_mix"].items()),
        f"- training: {cfg['steps']:,} steps of {cfg['batch_size']} (AdamW lr {cfg['lr']}, "
        f"weight decay {cfg['weight_decay']}, {cfg['warmup']} warm-up steps then cosine), "
        f"{cfg['threads']} CPU thread(s), {info['seconds'] / 60:.1f} min on {info['machine']}",
        f"- final training loss {info['losses'][-1][1]:.3f} (ln {cfg['batch_size']} = "
        f"{np.log(cfg['batch_size']):.2f} at chance)",
        "",
        "## Loss curve",
        "",
        "| step | " + " | ".join(str(s) for s, _ in _thin(info["losses"])) + " |",
        "| --- |" + " --- |" * len(_thin(info["losses"])),
        "| loss | " + " | ".join(f"{v:.3f}" for _, v in _thin(info["losses"])) + " |",
        "",
        f"## Zero-shot top-1 accuracy on the reference suite (prompt `{TEMPLATE}`)",
        "",
        *_suite_note(info.get("eval_per_class")),
        "| task | group | classes | test images | top-1 | chance |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {r['task']} | {r['group']} | {r['classes']} | {r['n']} | {r['top1']:.3f} | "
        f"{r['chance']:.3f} |"
        for r in info["zero_shot"]
    ]
    return "\n".join(lines) + "\n"


def _suite_note(per_class: int | None) -> list[str]:
    """Which suite size the table was measured on, and why `iimm demo` prints other numbers."""
    if per_class is None:
        return []
    return [
        f"Measured on the suite at {per_class} images a class (`--eval-per-class`, a quarter "
        "test). `iimm demo` draws it at its own `--per-class` (60 by default: other and more "
        "test images), so the zero-shot accuracy it prints differs a little from this table.",
        "",
    ]


def _thin(losses: list[tuple[int, float]], points: int = 10) -> list[tuple[int, float]]:
    step = max(1, len(losses) // points)
    picked = losses[::step]
    return picked if picked[-1] == losses[-1] else [*picked, losses[-1]]


def machine() -> str:
    """A short description of the machine the build ran on."""
    import os

    return f"{platform.machine()} with {os.cpu_count()} CPU(s), torch {torch.__version__}"
