"""The registry of fine-tuning methods of the paper (IIMM, §3 of DESIGN.md).

Each method freezes the whole model, then makes trainable exactly what it tunes:

* ``full``: every parameter of the base model.
* ``bitfit``: BitFit (Ben Zaken et al. 2022): every bias of the transformer blocks of both
  towers (attention, MLP and LayerNorm biases), optionally of the first ``blocks`` only.
* ``attention``: the attention in-projection weights (q, k, v) of the transformer blocks,
  optionally of the first ``blocks`` only.
* ``lora``: LoRA (Hu et al. 2022) on q and v (optionally the MLP), see :mod:`.lora`.
* ``adapter``: CLIP-Adapter (Gao et al. 2021) on both embeddings, see :mod:`.adapter`.
* ``probe``: a linear head on frozen image features, see :class:`.adapter.LinearProbe`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

from workers.ml.finetune.adapter import CLIPAdapter, LinearProbe
from workers.ml.finetune.config import FinetuneConfig
from workers.ml.finetune.errors import UnknownMethodError
from workers.ml.finetune.lora import apply_lora
from workers.ml.finetune.model import FinetunedCLIP
from workers.ml.finetune.towers import in_projections, transformer_blocks


@dataclass(frozen=True)
class MethodContext:
    """What a method may need from the task: the embedding width (read from the model's own
    text embeddings, never assumed) and the zero-shot class embeddings (``k × width``)."""

    width: int
    class_embeddings: Tensor
    class_names: list[str]


@dataclass(frozen=True)
class Method:
    """A fine-tuning method: ``apply`` makes its parameters trainable (the model is frozen
    before); ``grid_axes`` are the method-specific grid axes; ``trains_base_mode`` says whether
    the base model runs in ``train()`` mode (only ``full``: frozen towers stay in ``eval()`` so
    their buffers never change)."""

    name: str
    summary: str
    apply: Callable[[FinetunedCLIP, FinetuneConfig, MethodContext], None]
    grid_axes: tuple[str, ...] = ()
    trains_base_mode: bool = False


def _full(ft: FinetunedCLIP, config: FinetuneConfig, ctx: MethodContext) -> None:
    for p in ft.base.parameters():
        p.requires_grad_(True)


def _bitfit(ft: FinetunedCLIP, config: FinetuneConfig, ctx: MethodContext) -> None:
    for block in transformer_blocks(ft.base, config.blocks):
        for name, p in block.module.named_parameters():
            if name.endswith("bias"):
                p.requires_grad_(True)


def _attention(ft: FinetunedCLIP, config: FinetuneConfig, ctx: MethodContext) -> None:
    projections = [p for b in transformer_blocks(ft.base, config.blocks) for p in in_projections(b)]
    for proj in projections:
        getattr(proj.owner, proj.param_name).requires_grad_(True)


def _lora(ft: FinetunedCLIP, config: FinetuneConfig, ctx: MethodContext) -> None:
    for p in apply_lora(ft.base, config):
        p.requires_grad_(True)


def _adapter(ft: FinetunedCLIP, config: FinetuneConfig, ctx: MethodContext) -> None:
    device = ctx.class_embeddings.device
    args = (ctx.width, config.adapter_reduction, config.adapter_ratio, config.adapter_init)
    ft.image_adapter = CLIPAdapter(*args)
    ft.text_adapter = CLIPAdapter(*args)
    ft.image_adapter.to(device)
    ft.text_adapter.to(device)


def _probe(ft: FinetunedCLIP, config: FinetuneConfig, ctx: MethodContext) -> None:
    scale = float(ft.logit_scale().item())
    ft.probe = LinearProbe(ctx.class_embeddings.detach(), scale, ctx.class_names)
    ft.probe.to(ctx.class_embeddings.device)


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("full", "every parameter", _full, trains_base_mode=True),
        Method("bitfit", "biases of the transformer blocks (Ben Zaken et al. 2022)", _bitfit),
        Method("attention", "attention in-projection weights q, k, v", _attention),
        Method("lora", "LoRA on q, v (optionally MLP) (Hu et al. 2022)", _lora, ("lora_rank",)),
        Method(
            "adapter",
            "CLIP-Adapter on both embeddings (Gao et al. 2021)",
            _adapter,
            ("adapter_reduction",),
        ),
        Method("probe", "linear head on frozen image features", _probe),
    )
}


def get_method(name: str) -> Method:
    """The registered method ``name``; :class:`UnknownMethodError` (a ``ValueError``) lists
    the valid names otherwise."""
    try:
        return METHODS[name]
    except KeyError:
        raise UnknownMethodError(
            f"unknown fine-tuning method {name!r}; valid methods: {sorted(METHODS)}"
        ) from None


def apply_method(ft: FinetunedCLIP, config: FinetuneConfig, ctx: MethodContext) -> FinetunedCLIP:
    """Freeze ``ft`` and apply ``config.method`` to it. On an error (unknown method,
    unsupported tower) the ``requires_grad`` flags are restored and nothing is added."""
    method = get_method(config.method)
    flags = [p.requires_grad for p in ft.parameters()]
    try:
        for p in ft.parameters():
            p.requires_grad_(False)
        method.apply(ft, config, ctx)
    except Exception:
        for p, flag in zip(ft.parameters(), flags, strict=True):
            p.requires_grad_(flag)
        raise
    return ft
