"""Class text embeddings from prompt templates (CLIP's zero-shot classifier weights)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.nn import functional as F  # noqa: N812 (the universal alias)

from app.imagedata.prompts import render_prompts
from workers.ml.device import inference_context
from workers.ml.models import LoadedModel

_CACHE: dict[tuple[Any, ...], np.ndarray] = {}
_CACHE_SIZE = 64


def encode_class_texts(
    loaded: LoadedModel, class_names: list[str], templates: list[str], *, batch_size: int = 256
) -> np.ndarray:
    """t_c = normalise(mean_j normalise(f_text(template_j(c)))) for each class c (k x d, fp32).

    With one template this is just the normalised text embedding of the class prompt; with
    an ensemble the normalised prompt embeddings are averaged, then renormalised (Radford et
    al., 2021). Cached per process by (model fingerprint, device, precision, class names,
    templates), so the text tower runs once per task, not once per split or shard.
    """
    key = (loaded.fingerprint, str(loaded.device), str(loaded.autocast_dtype),
           tuple(class_names), tuple(templates))  # fmt: skip
    if key not in _CACHE:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = _encode(loaded, class_names, templates, batch_size)
    return _CACHE[key].copy()


def _encode(
    loaded: LoadedModel, class_names: list[str], templates: list[str], batch_size: int
) -> np.ndarray:
    """Run the text tower over every prompt (see `encode_class_texts`)."""
    prompts = render_prompts(templates, class_names)
    flat = [p for per_class in prompts for p in per_class]
    chunks = []
    with inference_context(loaded.device, loaded.autocast_dtype):
        for start in range(0, len(flat), batch_size):
            tokens = loaded.tokenizer(flat[start : start + batch_size]).to(loaded.device)
            out = loaded.model.encode_text(tokens)
            chunks.append(F.normalize(out.float(), dim=-1).cpu())
    emb = torch.cat(chunks).reshape(len(class_names), len(templates), -1).mean(dim=1)
    return F.normalize(emb, dim=-1).numpy().astype(np.float32)


#: Tokenised far past any CLIP context, to count a prompt's tokens before truncation.
_LONG_CONTEXT = 1024
_CHUNK = 1024


def prompt_report(
    loaded: LoadedModel, class_names: list[str], templates: list[str]
) -> dict[str, Any]:
    """Which prompts the tokenizer truncates, and which classes it makes indistinguishable.

    A prompt longer than the text tower's context (77 tokens for CLIP, fewer for small
    models) is cut, so classes whose names differ only after the cut get byte-identical
    tokens, hence identical text embeddings, for every template: zero-shot accuracy cannot
    tell them apart and IIMM's class statistics merge them. Returns ``{"context_length",
    "truncated": [{"class", "prompt", "tokens"}], "colliding": [[class, ...], ...]}``.
    """
    prompts = render_prompts(templates, class_names)
    flat = [p for per_class in prompts for p in per_class]
    cut = loaded.tokenizer(flat)
    context = int(cut.shape[-1])
    lengths: list[int] = []
    for start in range(0, len(flat), _CHUNK):  # chunks: 80 templates x 1000 classes is big
        full = loaded.tokenizer(flat[start : start + _CHUNK], context_length=_LONG_CONTEXT)
        pad = full[:, -1:]  # every row ends in padding at this length
        lengths.extend((full != pad).sum(dim=-1).tolist())
    truncated = [
        {"class": class_names[i // len(templates)], "prompt": p, "tokens": int(n)}
        for i, (p, n) in enumerate(zip(flat, lengths, strict=True))
        if n > context
    ]
    groups: dict[bytes, list[str]] = {}
    per_class = cut.reshape(len(class_names), len(templates), context)
    for name, tokens in zip(class_names, per_class, strict=True):
        groups.setdefault(tokens.numpy().tobytes(), []).append(name)
    colliding = [names for names in groups.values() if len(names) > 1]
    return {"context_length": context, "truncated": truncated, "colliding": colliding}


def prompt_warnings(report: dict[str, Any]) -> list[str]:
    """Sentences for a job result or a score from :func:`prompt_report`'s output."""
    out = []
    truncated = sorted({t["class"] for t in report.get("truncated", [])})
    if truncated:
        out.append(
            f"prompts of {len(truncated)} classes are longer than the model's context of "
            f"{report['context_length']} tokens and were truncated: {truncated[:20]}"
        )
    for names in report.get("colliding", []):
        out.append(
            f"classes {names} have identical prompts once truncated, hence identical text "
            "embeddings: zero-shot accuracy cannot tell them apart and the measures merge them"
        )
    return out
