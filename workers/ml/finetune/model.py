"""The contrastive zero-shot head around an open_clip dual encoder.

For a task with classes ``c`` and prompt templates ``m``: each prompt's text embedding is
L2-normalised, averaged over the templates of a class and renormalised (the class embedding
``t_c``); an image's embedding ``x`` is L2-normalised; ``logits_c = exp(logit_scale) · x·t_c``
(Radford et al. 2021). A SigLIP ``logit_bias`` shifts every class equally and so changes
neither the softmax nor the argmax; it is left out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F  # noqa: N812 - the usual alias

from workers.ml.finetune.adapter import CLIPAdapter, LinearProbe

Template = str | Callable[[str], str]
Tokenizer = Callable[[list[str]], Tensor]


def format_prompt(template: Template, class_name: str) -> str:
    """``template.format(class_name)`` for strings with ``{}``, ``template(class_name)`` for
    callables (open_clip's template lists hold lambdas)."""
    return template(class_name) if callable(template) else template.format(class_name)


class PromptBank:
    """Tokens of every (class, template) prompt, class-major."""

    def __init__(
        self, tokenizer: Tokenizer, class_names: Sequence[str], templates: Sequence[Template]
    ) -> None:
        if not class_names or not templates:
            raise ValueError("class_names and templates must both be non-empty")
        self.class_names = list(class_names)
        self.num_templates = len(templates)
        prompts = [format_prompt(t, c) for c in self.class_names for t in templates]
        self.tokens: Tensor = tokenizer(prompts)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


class FinetunedCLIP(nn.Module):
    """An open_clip model (``base``) plus what a fine-tuning method adds: CLIP-Adapters on
    the image and text embeddings, or a linear probe for one task's classes."""

    def __init__(self, base: nn.Module) -> None:
        super().__init__()
        self.base = base
        self.image_adapter: CLIPAdapter | None = None
        self.text_adapter: CLIPAdapter | None = None
        self.probe: LinearProbe | None = None

    def logit_scale(self) -> Tensor:
        return self.base.logit_scale.exp().float()

    def image_features(self, images: Tensor) -> Tensor:
        """L2-normalised image embeddings (after the image adapter when present)."""
        x = self.base.encode_image(images, normalize=False).float()
        if self.image_adapter is not None:
            x = self.image_adapter(x)
        return F.normalize(x, dim=-1)

    def prompt_features(self, tokens: Tensor, chunk: int | None = None) -> Tensor:
        """Raw text embeddings of prompt tokens, optionally in chunks (for evaluation)."""
        if chunk is None or tokens.shape[0] <= chunk:
            return self.base.encode_text(tokens, normalize=False).float()
        parts = [self.prompt_features(t) for t in tokens.split(chunk)]
        return torch.cat(parts)

    def class_embeddings(self, prompt_features: Tensor, num_templates: int) -> Tensor:
        """Prompt-ensemble class embeddings ``t_c`` (after the text adapter), normalised."""
        per_prompt = F.normalize(prompt_features.float(), dim=-1)
        t = per_prompt.view(-1, num_templates, per_prompt.shape[-1]).mean(dim=1)
        if self.text_adapter is not None:
            t = self.text_adapter(t)
        return F.normalize(t, dim=-1)

    def logits(self, images: Tensor, class_embeddings: Tensor, use_probe: bool = True) -> Tensor:
        """Class logits; the probe's head when there is one and ``use_probe``."""
        x = self.image_features(images)
        if use_probe and self.probe is not None:
            return self.probe(x)
        return self.logit_scale() * x @ class_embeddings.t()

    def text_trainable(self) -> bool:
        """True when a text-side parameter trains, so class embeddings need recomputing."""
        return any(
            p.requires_grad
            for n, p in self.base.named_parameters()
            if not n.startswith("visual.") and n not in ("logit_scale", "logit_bias")
        )

    def trainable_state(self) -> dict[str, Tensor]:
        """Detached CPU copies of every trainable parameter, by name in this module."""
        return {
            n: p.detach().to("cpu", copy=True)
            for n, p in self.named_parameters()
            if p.requires_grad
        }

    def load_trainable_state(self, state: dict[str, Tensor]) -> None:
        """Copy ``state`` (from :meth:`trainable_state`) into the trainable parameters."""
        params = dict(self.named_parameters())
        missing = sorted({n for n, p in params.items() if p.requires_grad} - set(state))
        unexpected = sorted(set(state) - set(params))
        if missing or unexpected:
            raise KeyError(
                f"trained state mismatch: missing {missing[:5]}, unexpected {unexpected[:5]}"
            )
        with torch.no_grad():
            for name, value in state.items():
                params[name].copy_(value)
