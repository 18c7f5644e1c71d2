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
