"""The entry point a worker task calls: :func:`finetune`."""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from torch import nn

from workers.ml.finetune.config import FinetuneConfig
from workers.ml.finetune.grid import run_grid
from workers.ml.finetune.methods import get_method
from workers.ml.finetune.model import Template, Tokenizer
from workers.ml.finetune.results import FinetuneResult
from workers.ml.finetune.runtime import Data, dataset_of, deterministic, resolve_device
from workers.ml.finetune.storage import Store, as_store
from workers.ml.finetune.train import ProgressCallback, Trainer


def finetune(
    model: nn.Module,
    tokenizer: Tokenizer,
    train: Data,
    val: Data | None,
    class_names: Sequence[str],
    templates: Sequence[Template],
    config: FinetuneConfig | None = None,
    *,
    checkpoint_dir: str | os.PathLike[str] | Store,
    device: str | torch.device = "auto",
    progress: ProgressCallback | None = None,
) -> FinetuneResult:
    """Fine-tune an open_clip ``model`` on one classification task as in the IIMM paper:
    the contrastive zero-shot head (``logits = exp(logit_scale) · x̂·t̂_c`` over the prompts
    ``templates`` × ``class_names``), cross-entropy, SGD with momentum, ``config.method`` (see
    :data:`METHODS`), optionally a grid search on ``val`` accuracy.

    ``train``/``val`` are Datasets (or DataLoaders) of ``(image_tensor, label)``. ``model`` is
    modified in place (frozen, adapted, trained); use ``result.model``. A checkpoint is
    written to ``checkpoint_dir`` (a directory or an object with ``open(path, mode)``) after
    every epoch; calling again with the same arguments resumes from it and, on CPU, ends with
    bit-identical weights. ``progress(epoch, step, loss, val_acc)`` is called after every
    step (``val_acc=None``) and after every epoch (mean loss, validation accuracy).

    Raises :class:`UnknownMethodError`, :class:`UnsupportedArchitectureError`,
    :class:`InvalidConfigError` / :class:`GridTooLargeError` (all :class:`FinetuneError`,
    errors of the request) and :class:`CheckpointMismatchError` for a store holding another run."""
    config = (config or FinetuneConfig()).validate()
    get_method(config.method)
    if len(dataset_of(train)) == 0:  # type: ignore[arg-type]
        raise ValueError("the training set is empty")
    store = as_store(checkpoint_dir)
    dev = resolve_device(device)

    def run_one(base: nn.Module, point: FinetuneConfig, point_store: Store) -> FinetuneResult:
        trainer = Trainer(
            base, tokenizer, (train, val), class_names, templates, point, point_store, dev, progress
        )
        return trainer.run()

    with deterministic(dev):
        if config.grid is not None:
            return run_grid(model, config, store, val is not None, run_one)
        return run_one(model, config, store)
