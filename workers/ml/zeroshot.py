"""Zero-shot classification metrics from image and class text embeddings (numpy)."""

from __future__ import annotations

import numpy as np

TOPK = 5


def topk_predictions(images: np.ndarray, texts: np.ndarray, k: int = TOPK) -> np.ndarray:
    """Indices of the k classes with the highest cosine similarity x·t_c, best first (n x k).

    Ties break towards the lower class index (stable sort), the same in every caller.
    """
    logits = np.asarray(images, dtype=np.float32) @ np.asarray(texts, dtype=np.float32).T
    k = min(k, logits.shape[1])
    return np.argsort(-logits, axis=1, kind="stable")[:, :k].astype(np.int32)


def zero_shot_metrics(topk: np.ndarray, labels: np.ndarray, num_classes: int) -> dict[str, float]:
    """Top-1 and top-5 accuracy and mean per-class recall (over classes present in `labels`).

    Top-5 is top-min(5, k) when there are fewer than five classes.
    """
    labels = np.asarray(labels)
    if len(labels) == 0:
        return {"top1": float("nan"), "top5": float("nan"), "mean_per_class_recall": float("nan")}
    hit1 = topk[:, 0] == labels
    hit5 = (topk == labels[:, None]).any(axis=1)
    counts = np.bincount(labels, minlength=num_classes)
    correct = np.bincount(labels, weights=hit1, minlength=num_classes)
    present = counts > 0
    return {
        "top1": float(hit1.mean()),
        "top5": float(hit5.mean()),
        "mean_per_class_recall": float(np.mean(correct[present] / counts[present])),
    }


def per_class_recall(topk: np.ndarray, labels: np.ndarray, num_classes: int) -> list[float | None]:
    """Top-1 recall of each class (correct / support), None for a class absent from `labels`
    (the fine-tuned evaluation's convention: `workers.ml.finetune.evaluate`)."""
    labels = np.asarray(labels)
    hit1 = np.asarray(topk)[:, 0] == labels if len(labels) else np.zeros(0, dtype=bool)
    counts = np.bincount(labels, minlength=num_classes)
    correct = np.bincount(labels, weights=hit1, minlength=num_classes)
    return [float(c / s) if s > 0 else None for c, s in zip(correct, counts, strict=True)]
