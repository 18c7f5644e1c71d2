"""One fine-tuning run: the contrastive zero-shot head, cross-entropy, SGD with momentum,
per-epoch validation and checkpoints, bit-identical resumption on CPU (IIMM paper, §3 of
DESIGN.md)."""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F  # noqa: N812 - the usual alias
from torch.nn.utils import parametrize
from torch.optim.lr_scheduler import LambdaLR

from workers.ml.finetune.checkpoint import (
    BEST,
    FINAL,
    FORMAT,
    capture_rng,
    check_run,
    load_latest,
    restore_rng,
    save_checkpoint,
)
from workers.ml.finetune.config import FinetuneConfig
from workers.ml.finetune.evaluate import PROMPT_CHUNK, score_loader
from workers.ml.finetune.methods import MethodContext, apply_method, get_method
from workers.ml.finetune.model import FinetunedCLIP, PromptBank, Template, Tokenizer, format_prompt
from workers.ml.finetune.results import EpochRecord, FinetuneResult
from workers.ml.finetune.runtime import Data, autocast, eval_loader, train_loader
from workers.ml.finetune.storage import Store, load_object, save_object

ProgressCallback = Callable[[int, int, float, float | None], None]
_NOT_IN_FINGERPRINT = ("grid", "max_grid_points", "eval_batch_size", "num_workers")


def run_fingerprint(
    config: FinetuneConfig, class_names: Sequence[str], templates: Sequence[Template]
) -> dict[str, Any]:
    """What must match for a checkpoint to be resumed: the semantic config and the task."""
    semantic = {k: v for k, v in config.to_dict().items() if k not in _NOT_IN_FINGERPRINT}
    return {
        "config": semantic,
        "class_names": list(class_names),
        "templates": [format_prompt(t, "{}") for t in templates],
    }


def make_scheduler(optimizer: torch.optim.Optimizer, schedule: str, total_steps: int) -> LambdaLR:
    """Per-step multiplier of the learning rate: 1 (``constant``) or a half cosine from 1 to
    0 over ``total_steps`` (``cosine``, Loshchilov & Hutter 2017, without restarts)."""

    def cosine(step: int) -> float:
        return 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / max(total_steps, 1)))

    def constant(step: int) -> float:
        return 1.0

    return LambdaLR(optimizer, cosine if schedule == "cosine" else constant)


def _build(
    model: nn.Module,
    tokenizer: Tokenizer,
    class_names: Sequence[str],
    templates: Sequence[Template],
    config: FinetuneConfig,
    device: torch.device,
) -> tuple[FinetunedCLIP, PromptBank, Tensor, int]:
    """Wrap and adapt the model; return it, the prompts, the zero-shot prompt features and
    the embedding width (read from those features)."""
    ft = FinetunedCLIP(model.to(device))
    bank = PromptBank(tokenizer, class_names, templates)
    bank.tokens = bank.tokens.to(device)
    with torch.no_grad(), autocast(device):
        features = ft.prompt_features(bank.tokens, chunk=PROMPT_CHUNK).detach()
    zero_shot = ft.class_embeddings(features, bank.num_templates)
    width = zero_shot.shape[-1]
    apply_method(ft, config, MethodContext(width, zero_shot, list(class_names)))
    return ft, bank, features, width


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy and Python's ``random``."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


class Trainer:
    """Holds one run's state; :meth:`run` trains from the latest checkpoint to the end."""

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Tokenizer,
        data: tuple[Data, Data | None],
        class_names: Sequence[str],
        templates: Sequence[Template],
        config: FinetuneConfig,
        store: Store,
        device: torch.device,
        progress: ProgressCallback | None = None,
    ) -> None:
        seed_everything(config.seed)
        self.config, self.store, self.device, self.progress = config, store, device, progress
        self.class_names = list(class_names)
        self.run_id = run_fingerprint(config, class_names, templates)
        self.ft, self.bank, features, self.width = _build(
            model, tokenizer, class_names, templates, config, device
        )
        self.text_cache = None if self.ft.text_trainable() else features
        self.params = [p for p in self.ft.parameters() if p.requires_grad]
        self.generator = torch.Generator().manual_seed(config.seed)
        train, val = data
        self.loader = train_loader(train, config.batch_size, self.generator, config.num_workers)
        self.val_loader = eval_loader(val, config.eval_batch_size) if val is not None else None
        self.optimizer = torch.optim.SGD(
            self.params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
        self.total_steps = config.total_steps(len(self.loader))
        self.total_epochs = config.total_epochs(len(self.loader))
        self.scheduler = make_scheduler(self.optimizer, config.schedule, self.total_steps)
        self.epoch = self.step = self.best_epoch = 0
        self.best_val: float | None = None
        self.history: list[EpochRecord] = []
        self.resumed_from = self._resume()

    def _resume(self) -> int:
        state = load_latest(self.store)
        if state is None:
            return 0
        check_run(state["run"], self.run_id)
        self.ft.load_trainable_state(state["params"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        restore_rng(state["rng"], self.generator)
        self.epoch, self.step = state["epoch"], state["step"]
        self.best_epoch, self.best_val = state["best_epoch"], state["best_val"]
        self.history = [EpochRecord(**r) for r in state["history"]]
        return self.epoch

    def _set_mode(self) -> None:
        self.ft.train()
        if not get_method(self.config.method).trains_base_mode:
            self.ft.base.eval()  # frozen towers: buffers (e.g. BatchNorm statistics) stay put

    def train_step(self, images: Tensor, labels: Tensor) -> float:
        """One optimisation step on a batch; returns the loss."""
        images = images.to(self.device)
        labels = torch.as_tensor(labels).long().to(self.device)
        # parametrize.cached: each LoRA weight W + BA is formed once per step, not per access
        with autocast(self.device), parametrize.cached():
            features = self.text_cache
            if features is None:  # the text tower trains: recompute the class embeddings
                features = self.ft.prompt_features(self.bank.tokens)
            class_embeddings = self.ft.class_embeddings(features, self.bank.num_templates)
            logits = self.ft.logits(images, class_embeddings)
        loss = F.cross_entropy(logits.float(), labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        return float(loss.detach())

    def _validate(self) -> float | None:
        if self.val_loader is None:
            return None
        with torch.no_grad(), autocast(self.device):
            features = self.text_cache
            if features is None:
                features = self.ft.prompt_features(self.bank.tokens, chunk=PROMPT_CHUNK)
        class_embeddings = self.ft.class_embeddings(features.float(), self.bank.num_templates)
        scores = score_loader(self.ft, self.val_loader, class_embeddings, self.device, True)
        return scores.top1

    def _epoch(self) -> EpochRecord:
        self._set_mode()
        total, count = 0.0, 0
        for images, labels in self.loader:
            if self.step >= self.total_steps:  # a step budget ends mid-epoch
                break
            loss = self.train_step(images, labels)
            self.step += 1
            total += loss * len(labels)
            count += len(labels)
            if self.progress is not None:
                self.progress(self.epoch + 1, self.step, loss, None)
        self.epoch += 1
        return EpochRecord(self.epoch, self.step, total / max(count, 1), self._validate())

    def _end_epoch(self, record: EpochRecord) -> None:
        self.history.append(record)
        if record.val_acc is not None and (self.best_val is None or record.val_acc > self.best_val):
            self.best_epoch, self.best_val = record.epoch, record.val_acc
            best = {"epoch": record.epoch, "params": self.ft.trainable_state()}
            save_object(self.store, BEST, best)
        elif self.val_loader is None:
            self.best_epoch = record.epoch
        save_checkpoint(self.store, self._state())
        if self.progress is not None:
            self.progress(record.epoch, record.step, record.train_loss, record.val_acc)

    def _state(self) -> dict[str, Any]:
        return {
            "run": self.run_id,
            "epoch": self.epoch,
            "step": self.step,
            "params": self.ft.trainable_state(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": capture_rng(self.generator),
            "best_epoch": self.best_epoch,
            "best_val": self.best_val,
            "history": [dataclasses.asdict(r) for r in self.history],
        }

    def run(self) -> FinetuneResult:
        """Train the remaining epochs (or steps), keep the best epoch's weights, write
        ``final.pt``."""
        while self.epoch < self.total_epochs:
            self._end_epoch(self._epoch())
        if self.val_loader is not None:
            best = load_object(self.store, BEST)
            if best is None or best["epoch"] != self.best_epoch:
                raise RuntimeError("best.pt is missing or stale; the checkpoint store is damaged")
            self.ft.load_trainable_state(best["params"])
        self._write_final()
        return FinetuneResult(
            model=self.ft.eval(),
            config=self.config,
            best_epoch=self.best_epoch,
            best_val_acc=self.best_val,
            history=list(self.history),
            trainable_params=sum(p.numel() for p in self.params),
            resumed_from_epoch=self.resumed_from,
        )

    def _write_final(self) -> None:
        artifact = {
            "format": FORMAT,
            "method": self.config.method,
            "config": self.config.to_json(),
            "params": self.ft.trainable_state(),
            "width": self.width,
            "class_names": self.class_names,
            "templates": self.run_id["templates"],
            "best_epoch": self.best_epoch,
            "best_val_acc": self.best_val,
            "history": [dataclasses.asdict(r) for r in self.history],
        }
        save_object(self.store, FINAL, artifact)
