"""Training the reference dual encoder: open_clip's model, tokenizer and `ClipLoss`, a short loop.

The loop is the contrastive pre-training of CLIP (Radford et al., 2021) at toy scale:
AdamW (weight decay on matrices only, as open_clip's training code does), linear warm-up
then cosine decay (torch's schedulers), one random caption of each image's three per step.
On CPU with a fixed thread count the run is deterministic for a seed: the same seed gives
bit-identical weights.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from workers.ml.reference.corpus import Corpus

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "tiny-clip.json"
ARCH = "reference-clip"  # the architecture's name: the stem of the JSON file written beside it


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of a reference build (the defaults are the shipped checkpoint's)."""

    seed: int = 0
    images: int = 30_000
    steps: int = 800
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 0.1
    warmup: int = 80
    threads: int = 1


@dataclass
class TrainResult:
    """The trained model and what happened: loss every `log_every` steps, seconds taken."""

    model: torch.nn.Module
    config: TrainConfig
    losses: list[tuple[int, float]] = field(default_factory=list)
    seconds: float = 0.0


def architecture() -> dict[str, Any]:
    """The reference model's open_clip architecture (the repository's tiny-clip.json)."""
    return json.loads(CONFIG.read_text())


def create_model(seed: int) -> tuple[torch.nn.Module, Any, Any]:
    """A freshly initialised model (seeded), its eval preprocessing and its tokenizer."""
    import open_clip

    if open_clip.get_model_config(CONFIG.stem) is None:
        open_clip.add_model_config(CONFIG)
    torch.manual_seed(seed)
    model, _, preprocess = open_clip.create_model_and_transforms(CONFIG.stem, pretrained=None)
    return model, preprocess, open_clip.get_tokenizer(CONFIG.stem)


def normalise(images: np.ndarray) -> torch.Tensor:
    """uint8 (n, h, w, 3) -> float (n, 3, h, w) with CLIP's mean and std (open_clip's constants).

    The same as the model's eval preprocessing for images already at the model's size.
    """
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255)
    mean = torch.tensor(OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(OPENAI_DATASET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def _optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        skip = p.ndim < 2 or "bn" in name or "ln" in name or "bias" in name or "logit_scale" in name
        (no_decay if skip else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)


def _schedule(opt: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LRScheduler:
    warmup = max(1, min(cfg.warmup, cfg.steps - 1))
    first = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1 / warmup, total_iters=warmup)
    rest = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, cfg.steps - warmup))
    return torch.optim.lr_scheduler.SequentialLR(opt, [first, rest], milestones=[warmup])


def train(
    corpus: Corpus,
    cfg: TrainConfig,
    *,
    log_every: int = 50,
    progress: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Train a fresh reference model on `corpus` for `cfg.steps` steps of `cfg.batch_size`."""
    import open_clip

    torch.set_num_threads(cfg.threads)
    model, _, tokenizer = create_model(cfg.seed)
    model.train()
    images = normalise(corpus.images)
    flat = [c for caps in corpus.captions for c in caps]
    tokens = tokenizer(flat).view(len(corpus.captions), -1, tokenizer.context_length)
    loss_fn = open_clip.ClipLoss()
    opt, result = _optimizer(model, cfg), TrainResult(model, cfg)
    sched = _schedule(opt, cfg)
    gen = np.random.default_rng([cfg.seed, 1])
    n, start = len(images), time.perf_counter()
    order, pos = gen.permutation(n), 0
    for step in range(1, cfg.steps + 1):
        if pos + cfg.batch_size > n:
            order, pos = gen.permutation(n), 0
        idx = torch.from_numpy(order[pos : pos + min(cfg.batch_size, n)])
        pos += cfg.batch_size
        pick = torch.from_numpy(gen.integers(0, tokens.shape[1], len(idx)))
        image_features, text_features, logit_scale = model(images[idx], tokens[idx, pick])[:3]
        loss = loss_fn(image_features, text_features, logit_scale)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():  # CLIP clamps the temperature at 100
            model.logit_scale.clamp_(0, math.log(100))
        if step % log_every == 0 or step == cfg.steps:
            result.losses.append((step, loss.item()))
            if progress is not None:
                progress(step, loss.item())
    model.eval()
    result.seconds = time.perf_counter() - start
    return result


def save(result: TrainResult, out: str | Path) -> tuple[Path, Path]:
    """Write `reference-clip.safetensors` and `reference-clip.json` into `out`; returns both."""
    from safetensors.torch import save_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    weights, arch = out / f"{ARCH}.safetensors", out / f"{ARCH}.json"
    state = {k: v.detach().contiguous() for k, v in result.model.state_dict().items()}
    save_file(state, str(weights), metadata={"train_config": json.dumps(asdict(result.config))})
    arch.write_text(json.dumps(architecture(), indent=2) + "\n")
    return weights, arch
