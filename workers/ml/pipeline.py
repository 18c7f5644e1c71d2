"""The per-batch work of an embedding run: forward pass on the device, then write, zero-shot
predictions and statistics on the host, overlapped with the next batch's forward on CUDA."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F  # noqa: N812 (the universal alias)

from app.measures import ModalityStats
from workers.ml.device import inference_context
from workers.ml.models import LoadedModel
from workers.ml.store import RunArrays
from workers.ml.zeroshot import topk_predictions


@dataclass
class Pending:
    """A batch whose embeddings are on their way to the host."""

    start: int  # first row (relative to the run) of the batch
    embeddings: torch.Tensor  # float16, host (pinned on CUDA)
    event: Any  # torch.cuda.Event, or None on CPU
    errors: list[tuple[int, str]]  # (row, message) of undecodable images


class BatchPipeline:
    """Encodes batches and stores them; `finish` of batch i runs after `submit` of i+1."""

    def __init__(
        self,
        loaded: LoadedModel,
        arrays: RunArrays,
        labels: np.ndarray,
        texts: np.ndarray,
        stats: ModalityStats,
    ) -> None:
        self.loaded, self.arrays, self.labels = loaded, arrays, labels
        self.texts, self.stats = texts, stats
        self.cuda = loaded.device.type == "cuda"
        self._buffers: list[torch.Tensor] = []
        self.device_step: Callable[[Any], torch.Tensor] | None = None
        self._turn = 0
        self.device_wait_s = 0.0  # time `finish` spent waiting for the device (CUDA)

    def submit(
        self,
        pixels: torch.Tensor | list[torch.Tensor],
        start: int,
        errors: list[tuple[int, str]],
    ) -> Pending:
        """Start the forward pass of one batch: f(x) normalised, rounded to float16.

        `pixels` is a batch tensor, or (device preprocessing, mixed sizes) a list of images;
        the device step (normalisation, or resize + crop + normalisation) runs on the device.
        """
        dev = self.loaded.device
        if isinstance(pixels, torch.Tensor):
            x: Any = pixels.to(dev, non_blocking=True)
        else:
            x = [p.to(dev, non_blocking=True) for p in pixels]
        if self.device_step is not None:
            x = self.device_step(x)
        if self.cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        with inference_context(self.loaded.device, self.loaded.autocast_dtype):
            feats = self.loaded.model.encode_image(x)
        half = F.normalize(feats.float(), dim=-1).half()
        if not self.cuda:
            return Pending(start, half, None, errors)
        host = self._host_buffer(half.shape)
        host.copy_(half, non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        return Pending(start, host, event, errors)

    def _host_buffer(self, shape: torch.Size) -> torch.Tensor:
        """Two alternating pinned buffers: one being filled while the other is read."""
        if len(self._buffers) < 2 or self._buffers[0].shape[0] < shape[0]:
            self._buffers = [
                torch.empty(shape, dtype=torch.float16, pin_memory=True) for _ in range(2)
            ]
        self._turn ^= 1
        return self._buffers[self._turn][: shape[0]]

    def finish(self, p: Pending) -> None:
        """Write the batch's rows, their top-k zero-shot predictions and update statistics."""
        if p.event is not None:
            t0 = time.perf_counter()
            p.event.synchronize()
            self.device_wait_s += time.perf_counter() - t0
        emb = p.embeddings.numpy()
        stop = p.start + emb.shape[0]
        self.arrays.images[p.start : stop] = emb
        topk = topk_predictions(emb, self.texts, self.arrays.topk.shape[1])
        ok = np.ones(emb.shape[0], dtype=bool)
        for row, _ in p.errors:
            ok[row - p.start] = False
            topk[row - p.start] = -1
        self.arrays.topk[p.start : stop] = topk
        self.stats.update(emb[ok], self.labels[p.start : stop][ok], row_offset=p.start)
