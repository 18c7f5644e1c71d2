"""Evaluation metrics against an independent computation, and the validation split."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from tests.workers.ml.finetune.support import CLASS_NAMES, TEMPLATES, colour_task
from workers.ml.finetune import FinetunedCLIP, evaluate, validation_split
from workers.ml.finetune.adapter import LinearProbe
from workers.ml.finetune.evaluate import score_loader, zero_shot_class_embeddings
from workers.ml.finetune.model import PromptBank, format_prompt


def _reference_metrics(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float, float]:
    ranked = np.argsort(-logits, axis=1, kind="stable")
    top1 = float(np.mean(ranked[:, 0] == labels))
    top5 = float(np.mean([label in row[:5] for row, label in zip(ranked, labels, strict=True)]))
    recalls = [np.mean(ranked[labels == c, 0] == c) for c in np.unique(labels)]
    return top1, top5, float(np.mean(recalls))


def test_metrics_match_an_independent_computation(make_model, tokenizer) -> None:
    model = make_model()
    data = colour_task(40, 3)
    images, labels = data.tensors
    names = [*CLASS_NAMES, "purple", "orange", "grey"]  # 7 classes, 3 never seen: top-5 < 1
    result = evaluate(model, tokenizer, data, names, TEMPLATES, device="cpu", batch_size=16)
    # independent zero-shot head, straight from open_clip's encoders
    with torch.no_grad():
        prompts = [[format_prompt(t, c) for t in TEMPLATES] for c in names]
        text = torch.stack(
            [F.normalize(F.normalize(model.encode_text(tokenizer(p)), dim=-1).mean(0), dim=0)
             for p in prompts]
        )  # fmt: skip
        image = F.normalize(model.encode_image(images), dim=-1)
        logits = (model.logit_scale.exp() * image @ text.T).numpy()
    top1, top5, recall = _reference_metrics(logits, labels.numpy())
    assert result.n == 40
    assert result.top1 == pytest.approx(top1)
    assert result.top5 == pytest.approx(top5)
    assert result.mean_per_class_recall == pytest.approx(recall)
    assert result.per_class_recall[4:] == [None, None, None]


def test_zero_shot_evaluation_leaves_the_model_in_its_mode(make_model, tokenizer) -> None:
    # the worker's model cache hands the same base model to every job: evaluating it must not
    # switch it to training mode (dropout, norm statistics) for the next embedding
    model = make_model().eval()
    evaluate(model, tokenizer, colour_task(8, 3), CLASS_NAMES, TEMPLATES, device="cpu")
    assert not any(m.training for m in model.modules())
    model.train()
    evaluate(model, tokenizer, colour_task(8, 3), CLASS_NAMES, TEMPLATES, device="cpu")
    assert all(m.training for m in model.modules())


def test_metrics_on_known_logits() -> None:
    class Fixed(FinetunedCLIP):
        def logits(self, images, class_embeddings, use_probe=True):  # type: ignore[override]
            return images

    logits = torch.tensor([[3.0, 2, 1, 0, 0, 0], [0, 3, 2, 1, 0, 0], [5, 4, 3, 2, 1, 0]])
    labels = torch.tensor([0, 0, 5])  # hit; second-ranked; sixth-ranked
    loader = [(logits, labels)]
    result = score_loader(
        Fixed(torch.nn.Linear(1, 1)), loader, torch.zeros(6, 2), torch.device("cpu"), False
    )
    assert result.top1 == pytest.approx(1 / 3)
    assert result.top5 == pytest.approx(2 / 3)
    assert result.per_class_recall == [0.5, None, None, None, None, 0.0]
    assert result.mean_per_class_recall == pytest.approx(0.25)


def test_probe_head_is_used_only_on_its_own_task(make_model, tokenizer) -> None:
    ft = FinetunedCLIP(make_model())
    bank = PromptBank(tokenizer, CLASS_NAMES, TEMPLATES)
    embeddings = zero_shot_class_embeddings(ft, bank, torch.device("cpu"))
    ft.probe = LinearProbe(torch.zeros_like(embeddings), 1.0, CLASS_NAMES)  # predicts class 0
    data = colour_task(8, 1)
    assert evaluate(ft, tokenizer, data, CLASS_NAMES, TEMPLATES, device="cpu").top1 == 0.25
    other = evaluate(ft, tokenizer, data, CLASS_NAMES[::-1], TEMPLATES, device="cpu")
    zero_shot = evaluate(make_model(), tokenizer, data, CLASS_NAMES[::-1], TEMPLATES, device="cpu")
    assert other == zero_shot


def test_validation_split_is_seeded_bounded_and_disjoint() -> None:
    data = colour_task(100, 0)
    train, val = validation_split(data, seed=4)
    assert len(val) == 10 and len(train) == 90
    assert set(train.indices).isdisjoint(val.indices)
    assert validation_split(data, seed=4)[1].indices == val.indices
    assert validation_split(data, seed=5)[1].indices != val.indices
    assert len(validation_split(data, fraction=0.5, max_size=7)[1]) == 7
