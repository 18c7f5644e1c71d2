"""Evaluation with the zero-shot head, and loading a fine-tuned model back.

Metrics over a labelled set of ``n`` images and ``k`` classes: top-1 accuracy, top-5 accuracy
(top-``min(5, k)``), and mean per-class recall ``(1/|C|) Σ_c #{i: y_i = c, ŷ_i = c} / #{i:
y_i = c}`` over the classes ``C`` present in the set.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.utils.data import DataLoader

from workers.ml.finetune.checkpoint import FINAL
from workers.ml.finetune.config import FinetuneConfig
from workers.ml.finetune.methods import MethodContext, apply_method
from workers.ml.finetune.model import FinetunedCLIP, PromptBank, Template, Tokenizer
from workers.ml.finetune.runtime import Data, autocast, eval_loader, resolve_device
from workers.ml.finetune.storage import Store, as_store, load_object

PROMPT_CHUNK = 1024


@dataclass(frozen=True)
class EvalResult:
    """Accuracy figures of one model on one labelled set."""

    top1: float
    top5: float
    mean_per_class_recall: float
    n: int
    per_class_recall: list[float | None]

    def to_dict(self) -> dict[str, object]:
        return {
            "top1": self.top1,
            "top5": self.top5,
            "mean_per_class_recall": self.mean_per_class_recall,
            "n": self.n,
            "per_class_recall": self.per_class_recall,
        }


def zero_shot_class_embeddings(ft: FinetunedCLIP, bank: PromptBank, device: torch.device) -> Tensor:
    """Class embeddings ``t_c`` of the bank's prompts, without gradients."""
    with torch.no_grad(), autocast(device):
        features = ft.prompt_features(bank.tokens.to(device), chunk=PROMPT_CHUNK)
    return ft.class_embeddings(features, bank.num_templates)


def _metrics(hits1: int, hits5: int, correct: Tensor, support: Tensor) -> EvalResult:
    n = int(support.sum())
    recall = [float(c / s) if s > 0 else None for c, s in zip(correct, support, strict=True)]
    present = [r for r in recall if r is not None]
    return EvalResult(
        top1=hits1 / n if n else 0.0,
        top5=hits5 / n if n else 0.0,
        mean_per_class_recall=sum(present) / len(present) if present else 0.0,
        n=n,
        per_class_recall=recall,
    )


def score_loader(
    ft: FinetunedCLIP,
    loader: DataLoader,
    class_embeddings: Tensor,
    device: torch.device,
    use_probe: bool,
) -> EvalResult:
    """Top-1, top-5 and per-class recall of ``ft`` over ``loader``; leaves ``ft`` in the
    training mode it was in."""
    k = class_embeddings.shape[0]
    correct = torch.zeros(k, dtype=torch.long)
    support = torch.zeros(k, dtype=torch.long)
    hits1 = hits5 = 0
    was_training = ft.training
    ft.eval()
    with torch.no_grad(), parametrize.cached():  # LoRA weights formed once, not per batch
        for images, labels in loader:
            with autocast(device):
                logits = ft.logits(images.to(device), class_embeddings, use_probe=use_probe)
            top = logits.float().topk(min(5, k), dim=-1).indices.cpu()
            labels = torch.as_tensor(labels).long()
            hit = top[:, 0] == labels
            hits1 += int(hit.sum())
            hits5 += int((top == labels[:, None]).any(dim=1).sum())
            support += torch.bincount(labels, minlength=k)
            correct += torch.bincount(labels[hit], minlength=k)
    ft.train(was_training)
    return _metrics(hits1, hits5, correct, support)


def evaluate(
    model: nn.Module,
    tokenizer: Tokenizer,
    data: Data,
    class_names: Sequence[str],
    templates: Sequence[Template],
    *,
    device: str | torch.device = "auto",
    batch_size: int = 256,
    use_probe: bool | None = None,
) -> EvalResult:
    """Top-1, top-5 and mean per-class recall of ``model`` (an open_clip model, zero-shot,
    or a :class:`FinetunedCLIP`) on ``data`` yielding ``(image, label)``, with the zero-shot
    head over ``class_names`` × ``templates``. A linear probe is used only on the task it was
    trained for (same class names) unless ``use_probe`` says otherwise."""
    dev = resolve_device(device)
    # a new wrapper starts in training mode and score_loader restores the mode it finds, so
    # give it the model's own: a zero-shot evaluation of a (cached) base model in eval mode
    # must leave it in eval mode
    ft = model if isinstance(model, FinetunedCLIP) else FinetunedCLIP(model).train(model.training)
    ft.to(dev)
    if use_probe is None:
        use_probe = ft.probe is not None and ft.probe.class_names == list(class_names)
    bank = PromptBank(tokenizer, class_names, templates)
    class_embeddings = zero_shot_class_embeddings(ft, bank, dev)
    return score_loader(ft, eval_loader(data, batch_size), class_embeddings, dev, use_probe)


def load_finetuned(
    base_model: nn.Module, checkpoint_dir: str | os.PathLike[str] | Store
) -> FinetunedCLIP:
    """Rebuild a fine-tuned model: ``base_model`` (the same base that was fine-tuned, which is
    modified in place) with the method re-applied and the trained parameters of
    ``final.pt`` loaded. Raises ``FileNotFoundError`` when the run has not finished."""
    artifact = load_object(as_store(checkpoint_dir), FINAL)
    if artifact is None:
        raise FileNotFoundError(f"no {FINAL} in the checkpoint location: training not finished")
    config = FinetuneConfig.from_json(artifact["config"])
    device = next(base_model.parameters()).device
    ft = FinetunedCLIP(base_model)
    placeholder = torch.zeros(len(artifact["class_names"]), artifact["width"], device=device)
    apply_method(ft, config, MethodContext(artifact["width"], placeholder, artifact["class_names"]))
    ft.load_trainable_state(artifact["params"])
    return ft.eval()
