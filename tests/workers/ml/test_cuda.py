"""The CUDA path (bf16 autocast, channels_last, pinned memory, overlapped copies): skipped
without a GPU. It must agree with the CPU path and keep the resume/shard guarantees."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from app.imagedata import DatasetLayout
from workers.ml.embed import embed_dataset
from workers.ml.models import LoadedModel, load_model
from workers.ml.shards import merge_shards, plan_shards

from .conftest import TINY_JSON

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


class StopError(Exception):
    """Raised from the progress callback to interrupt a run."""


@pytest.fixture(scope="module")
def gpu_model() -> LoadedModel:
    return load_model(str(TINY_JSON), device="cuda", seed=0)


def test_cuda_model_uses_bf16_autocast_and_same_fingerprint(
    gpu_model: LoadedModel, tiny_model: LoadedModel
) -> None:
    assert gpu_model.device.type == "cuda" and gpu_model.autocast_dtype == torch.bfloat16
    assert gpu_model.fingerprint == tiny_model.fingerprint


def test_cuda_embeddings_agree_with_cpu(
    gpu_model: LoadedModel, tiny_model: LoadedModel, shapes: DatasetLayout, tmp_path: Path
) -> None:
    cpu = embed_dataset(
        tiny_model, shapes, split="train", out_dir=tmp_path / "c", batch_size=8, num_workers=0
    )
    gpu = embed_dataset(
        gpu_model, shapes, split="train", out_dir=tmp_path / "g", batch_size=8, num_workers=2
    )
    a, b = cpu.images().astype(np.float32), gpu.images().astype(np.float32)
    cosine = (a * b).sum(axis=1)
    print(f"min cosine cpu-fp32 vs cuda-bf16: {cosine.min():.5f}")
    assert cosine.min() > 0.98
    assert abs(cpu.measures["iimm"] - gpu.measures["iimm"]) < 0.02
    fp32 = load_model(str(TINY_JSON), device="cuda", precision="fp32", seed=0)
    exact = embed_dataset(
        fp32, shapes, split="train", out_dir=tmp_path / "f", batch_size=8, num_workers=2
    )
    assert np.allclose(exact.images().astype(np.float32), a, atol=2e-3)


def test_cuda_resume_and_shards_are_bit_identical(
    gpu_model: LoadedModel, shapes: DatasetLayout, tmp_path: Path
) -> None:
    whole = embed_dataset(
        gpu_model, shapes, split="train", out_dir=tmp_path / "w", batch_size=4, num_workers=2
    )
    calls: list[float] = []

    def stop(fraction: float, stage: str, **units: object) -> None:
        if stage == "embedding":
            calls.append(fraction)
            if len(calls) == 3:
                raise StopError

    with pytest.raises(StopError):
        embed_dataset(gpu_model, shapes, split="train", out_dir=tmp_path / "r", batch_size=4,
                      num_workers=2, progress=stop, checkpoint_every_s=0.0)  # fmt: skip
    assert json.loads((tmp_path / "r" / "progress.json").read_text())["batches_done"] == 3
    embed_dataset(
        gpu_model, shapes, split="train", out_dir=tmp_path / "r", batch_size=4, num_workers=2
    )
    dirs = []
    for i, shard in enumerate(plan_shards(36, 3, 4)):
        dirs.append(tmp_path / f"s{i}")
        embed_dataset(gpu_model, shapes, split="train", out_dir=dirs[-1], batch_size=4,
                      num_workers=2, shard=shard)  # fmt: skip
    merge_shards(dirs, tmp_path / "m")
    for name in ("images.npy", "topk.npy", "stats.json"):
        ref = (whole.out_dir / name).read_bytes()
        assert (tmp_path / "r" / name).read_bytes() == ref
        assert (tmp_path / "m" / name).read_bytes() == ref, name
