"""Find the transformer blocks, attention in-projections and MLPs of an open_clip model.

Two families of towers are understood:

* open_clip's own (``VisionTransformer``, ``TextTransformer`` and the text tower of ``CLIP``):
  blocks in ``<tower>.transformer.resblocks``; attention is ``nn.MultiheadAttention`` or
  open_clip's ``Attention``, both holding a fused ``in_proj_weight`` of rows ``[q; k; v]``.
* timm image towers (``TimmModel``: SigLIP, EVA-02, ...): blocks in ``visual.trunk.blocks``;
  attention holds a fused ``qkv`` ``nn.Linear`` or separate ``q_proj``/``k_proj``/``v_proj``.

Anything else (ResNet image towers, Hugging Face text towers) raises
:class:`UnsupportedArchitectureError` naming the tower and its class.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from workers.ml.finetune.errors import UnsupportedArchitectureError


@dataclass(frozen=True)
class Block:
    """One transformer block: its dotted name in the base model, its tower and the module."""

    name: str
    tower: str
    module: nn.Module


@dataclass(frozen=True)
class InProjection:
    """A weight holding query/key/value rows: ``owner.<param_name>``; ``parts`` names the row
    blocks in order (``("q", "k", "v")`` when fused, ``("q",)`` for a separate projection)."""

    name: str
    owner: nn.Module
    param_name: str
    parts: tuple[str, ...]


def _image_blocks_path(model: nn.Module) -> str:
    visual = getattr(model, "visual", None)
    if visual is None:
        raise UnsupportedArchitectureError("the model has no image tower (`visual`)")
    if isinstance(getattr(getattr(visual, "transformer", None), "resblocks", None), nn.Module):
        return "visual.transformer.resblocks"
    if isinstance(getattr(getattr(visual, "trunk", None), "blocks", None), nn.Module):
        return "visual.trunk.blocks"
    raise UnsupportedArchitectureError(
        f"image tower {type(visual).__name__} has no transformer blocks "
        "(supported: open_clip VisionTransformer, timm ViT/EVA trunks)"
    )


def _text_blocks_path(model: nn.Module) -> str:
    text = getattr(model, "text", None)
    if text is None:  # open_clip.CLIP keeps its text tower at the top level
        if isinstance(getattr(getattr(model, "transformer", None), "resblocks", None), nn.Module):
            return "transformer.resblocks"
        raise UnsupportedArchitectureError("the model has no recognisable text tower")
    if isinstance(getattr(getattr(text, "transformer", None), "resblocks", None), nn.Module):
        return "text.transformer.resblocks"
    raise UnsupportedArchitectureError(
        f"text tower {type(text).__name__} has no open_clip transformer blocks "
        "(Hugging Face text towers are not supported by this method)"
    )


def transformer_blocks(model: nn.Module, first_n: int | None = None) -> list[Block]:
    """Blocks of both towers, image first, in depth order; only the first ``first_n`` of each
    tower when given. Raises :class:`UnsupportedArchitectureError` for unknown towers."""
    blocks: list[Block] = []
    for tower, path in (("image", _image_blocks_path(model)), ("text", _text_blocks_path(model))):
        container = model.get_submodule(path)
        children = list(container.named_children())
        for index, (child_name, module) in enumerate(children):
            if first_n is not None and index >= first_n:
                break
            blocks.append(Block(f"{path}.{child_name}", tower, module))
    return blocks


def in_projections(block: Block) -> list[InProjection]:
    """The q/k/v input projection weights of one block's attention."""
    attn = getattr(block.module, "attn", None)
    prefix = f"{block.name}.attn"
    if isinstance(getattr(attn, "in_proj_weight", None), nn.Parameter):
        return [InProjection(f"{prefix}.in_proj_weight", attn, "in_proj_weight", ("q", "k", "v"))]
    if isinstance(getattr(attn, "qkv", None), nn.Linear):
        return [InProjection(f"{prefix}.qkv.weight", attn.qkv, "weight", ("q", "k", "v"))]
    separate = [getattr(attn, f"{p}_proj", None) for p in ("q", "k", "v")]
    if all(isinstance(m, nn.Linear) for m in separate):
        return [
            InProjection(f"{prefix}.{p}_proj.weight", m, "weight", (p,))
            for p, m in zip(("q", "k", "v"), separate, strict=True)
        ]
    raise UnsupportedArchitectureError(
        f"{block.tower} tower block {block.name}: attention {type(attn).__name__} has neither "
        "an in_proj_weight, a fused qkv Linear nor q/k/v_proj Linears"
    )


def mlp_linears(block: Block) -> list[tuple[str, nn.Linear]]:
    """``(dotted name, module)`` of every ``nn.Linear`` inside the block's ``mlp``."""
    mlp = getattr(block.module, "mlp", None)
    if not isinstance(mlp, nn.Module):
        raise UnsupportedArchitectureError(f"{block.tower} tower block {block.name} has no mlp")
    return [
        (f"{block.name}.mlp.{name}", module)
        for name, module in mlp.named_modules()
        if isinstance(module, nn.Linear)
    ]


def is_image_param(name: str) -> bool:
    """True for parameters of the image tower (dotted names relative to the base model)."""
    return name.startswith("visual.")
