"""LoRA, CLIP-Adapter and the probe: equal to the base model at initialisation, on open_clip's
own towers and on timm towers; clear errors where a method cannot apply; PEFT checkpoints
hold only the trained parameters."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from timm.models.eva import Eva
from torch import nn

from tests.workers.ml.finetune.support import CLASS_NAMES, TEMPLATES, colour_task
from workers.ml.finetune import (
    FinetuneConfig,
    FinetunedCLIP,
    UnsupportedArchitectureError,
    finetune,
    merge_lora,
)
from workers.ml.finetune.checkpoint import FINAL, load_latest
from workers.ml.finetune.evaluate import zero_shot_class_embeddings
from workers.ml.finetune.lora import apply_lora
from workers.ml.finetune.methods import MethodContext, apply_method
from workers.ml.finetune.model import PromptBank
from workers.ml.finetune.storage import LocalStore, load_object


def _outputs(model: nn.Module, size: int, tokenizer) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(5))
    tokens = tokenizer(["a red thing", "blue"])
    return model.encode_image(images), model.encode_text(tokens)


def _effective_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every weight as the forward pass sees it (a parametrized weight through its property)."""
    weights = {}
    for module_name, module in model.named_modules():
        for name in ("in_proj_weight", "weight"):
            value = getattr(module, name, None)
            if isinstance(value, torch.Tensor):
                weights[f"{module_name}.{name}"] = value.detach().clone()
    return weights


def _assert_lora_is_identity(model: nn.Module, size: int, tokenizer, mlp: bool) -> None:
    """The adapted model's effective weights are bit-identical to the base's; its outputs
    agree to BLAS rounding (a new weight buffer may take another blocking path)."""
    model.eval()
    with torch.no_grad():
        reference = _outputs(model, size, tokenizer)
    weights = _effective_weights(model)
    added = apply_lora(model, FinetuneConfig(method="lora", lora_rank=4, lora_mlp=mlp))
    assert added and all(p.abs().sum() > 0 for p in added if p.shape[0] == 4)  # A is random
    adapted_weights = _effective_weights(model)
    assert set(adapted_weights) == set(weights)
    for name, weight in weights.items():
        assert torch.equal(adapted_weights[name], weight), name
    with torch.no_grad():  # inference path (MultiheadAttention's fast path)
        adapted = _outputs(model, size, tokenizer)
    model.train()  # training path (gradients on)
    trained_path = _outputs(model, size, tokenizer)
    for ref, new, grad_path in zip(reference, adapted, trained_path, strict=True):
        torch.testing.assert_close(new, ref, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(grad_path, ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("mlp", [False, True])
def test_lora_equals_base_at_init_on_open_clip_towers(make_model, tokenizer, mlp: bool) -> None:
    _assert_lora_is_identity(make_model(), 32, tokenizer, mlp)


def test_lora_equals_base_at_init_on_timm_fused_qkv_tower(make_model, tokenizer) -> None:
    model = make_model("ft-tiny-timm")  # timm ViT trunk: fused qkv Linear, as SigLIP
    _assert_lora_is_identity(model, 160, tokenizer, mlp=True)
    names = [n for n, _ in model.named_parameters() if "lora_A" in n]
    assert any(n.startswith("visual.trunk.blocks.") and "qkv" in n for n in names)


def test_lora_on_timm_eva_tower_with_separate_projections(make_model, tokenizer) -> None:
    model = make_model("ft-tiny-timm")
    width = model.visual.trunk.num_features
    torch.manual_seed(0)
    model.visual.trunk = Eva(  # EVA-02 layout: separate q/k/v_proj, SwiGLU MLP
        img_size=160, patch_size=16, embed_dim=width, depth=2, num_heads=2,
        qkv_fused=False, swiglu_mlp=True, num_classes=0, global_pool="avg",
    )  # fmt: skip
    _assert_lora_is_identity(model, 160, tokenizer, mlp=True)
    names = {n for n, _ in model.named_parameters() if "lora_" in n}
    assert any("q_proj" in n for n in names) and any("v_proj" in n for n in names)
    assert not any("k_proj" in n for n in names)


def _context(ft: FinetunedCLIP, tokenizer) -> tuple[MethodContext, torch.Tensor]:
    bank = PromptBank(tokenizer, CLASS_NAMES, TEMPLATES)
    class_embeddings = zero_shot_class_embeddings(ft, bank, torch.device("cpu"))
    ctx = MethodContext(class_embeddings.shape[1], class_embeddings, CLASS_NAMES)
    return ctx, class_embeddings


@pytest.mark.parametrize("method", ["adapter", "probe"])
def test_adapter_and_probe_predict_as_the_base_at_init(method: str, make_model, tokenizer) -> None:
    ft = FinetunedCLIP(make_model()).eval()
    ctx, class_embeddings = _context(ft, tokenizer)
    images = colour_task(8, 1).tensors[0]
    with torch.no_grad():
        before = ft.logits(images, class_embeddings)
        apply_method(ft, FinetuneConfig(method=method), ctx)
        _, after_embeddings = _context(ft, tokenizer)
        after = ft.logits(images, after_embeddings)
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-5)
    assert method != "adapter" or ft.image_adapter.down.weight.shape == (32 // 4, 32)


@pytest.mark.parametrize("method", ["bitfit", "attention", "lora"])
def test_transformer_methods_refuse_a_resnet_tower(method: str, make_model, tokenizer) -> None:
    model = make_model("ft-tiny-rn")
    ft = FinetunedCLIP(model)
    ctx, _ = _context(ft, tokenizer)
    flags = [p.requires_grad for p in model.parameters()]
    names = [n for n, _ in model.named_parameters()]
    with pytest.raises(UnsupportedArchitectureError, match="ModifiedResNet"):
        apply_method(ft, FinetuneConfig(method=method), ctx)
    assert [p.requires_grad for p in model.parameters()] == flags
    assert [n for n, _ in model.named_parameters()] == names


@pytest.mark.parametrize("method", ["full", "adapter", "probe"])
def test_tower_agnostic_methods_accept_a_resnet_tower(method: str, make_model, tokenizer) -> None:
    ft = FinetunedCLIP(make_model("ft-tiny-rn"))
    ctx, _ = _context(ft, tokenizer)
    apply_method(ft, FinetuneConfig(method=method), ctx)
    assert any(p.requires_grad for p in ft.parameters())


def test_peft_checkpoint_holds_only_trained_params(
    make_model: Callable[..., nn.Module], tokenizer, tmp_path
) -> None:
    config = FinetuneConfig(method="lora", epochs=1, batch_size=16, lr=0.05, lora_rank=2)
    result = finetune(
        make_model(), tokenizer, colour_task(32, 0), colour_task(8, 9), CLASS_NAMES, TEMPLATES,
        config, checkpoint_dir=tmp_path, device="cpu",
    )  # fmt: skip
    trained = {n for n, p in result.model.named_parameters() if p.requires_grad}
    assert trained and all("lora_" in n for n in trained)
    store = LocalStore(tmp_path)
    checkpoint = load_latest(store)
    assert set(checkpoint["params"]) == trained
    assert set(load_object(store, FINAL)["params"]) == trained
    assert sum(t.numel() for t in checkpoint["params"].values()) == result.trainable_params
    images = colour_task(4, 2).tensors[0]
    _, class_embeddings = _context(result.model, tokenizer)
    with torch.no_grad():
        adapted = result.model.logits(images, class_embeddings)
        merged = FinetunedCLIP(merge_lora(result.model.base))
        assert not any("lora_" in n for n, _ in merged.named_parameters())
        torch.testing.assert_close(merged.logits(images, class_embeddings), adapted)
