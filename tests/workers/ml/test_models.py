"""Model loading: JSON architectures, checkpoints, fingerprints, caching, missing weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from app.imagedata import ModelSpecError
from workers.ml.models import LoadedModel, WeightsNotFoundError, load_model

from .conftest import TINY_JSON


def test_tiny_model_loads_with_its_tokenizer(tiny_model: LoadedModel) -> None:
    assert tiny_model.embed_dim == 32
    assert tiny_model.device == torch.device("cpu")
    assert tiny_model.autocast_dtype is None  # fp32 on CPU
    assert tiny_model.tokenizer(["a photo"]).shape == (1, 16)
    assert not tiny_model.model.training
    # cached per process (compared with a fresh load, not with the session's fixture: a test
    # of another module may have cleared the cache since the fixture was built)
    cached = load_model(str(TINY_JSON), device="cpu", seed=0)
    assert cached.fingerprint == tiny_model.fingerprint and not cached.model.training
    assert load_model(str(TINY_JSON), device="cpu", seed=0) is cached


def test_fingerprint_is_stable_and_follows_the_weights(
    tiny_model: LoadedModel, tmp_path: Path
) -> None:
    from workers.ml.models import clear_model_cache

    other_seed = load_model(str(TINY_JSON), device="cpu", seed=1)
    assert other_seed.fingerprint != tiny_model.fingerprint
    ckpt = tmp_path / "tiny.pt"
    torch.save(tiny_model.model.state_dict(), ckpt)
    from_file = load_model(f"{TINY_JSON}@{ckpt}", device="cpu")
    assert from_file.fingerprint == tiny_model.fingerprint  # same weights, however obtained
    changed = {k: v.clone() for k, v in tiny_model.model.state_dict().items()}
    changed["logit_scale"] += 1.0
    torch.save(changed, tmp_path / "changed.pt")
    assert (
        load_model(f"{TINY_JSON}@{tmp_path / 'changed.pt'}", device="cpu").fingerprint
        != tiny_model.fingerprint
    )
    fp = tiny_model.fingerprint
    clear_model_cache()
    assert load_model(str(TINY_JSON), device="cpu", seed=0).fingerprint == fp  # a fresh load


def test_missing_pretrained_weights_name_the_cache_directory(tmp_path: Path) -> None:
    cache = tmp_path / "weights-cache"
    with pytest.raises(WeightsNotFoundError) as err:
        load_model("clip", device="cpu", cache_dir=cache)
    message = str(err.value)
    assert str(cache) in message and "timm/vit_base_patch32_clip_224.openai" in message
    assert "ViT-B-32@/path/to/weights.pt" in message


def test_bad_checkpoint_and_missing_file_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ModelSpecError, match="checkpoint file not found"):
        load_model(f"{TINY_JSON}@{tmp_path / 'nope.pt'}", device="cpu")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelSpecError, match=r"cannot load checkpoint .*bad\.pt"):
        load_model(f"{TINY_JSON}@{bad}", device="cpu")


def test_cuda_request_without_cuda_is_a_clear_error() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match="CUDA is not available"):
        load_model(str(TINY_JSON), device="cuda")


def test_json_name_clash_with_a_different_config_is_refused(tmp_path: Path) -> None:
    clash = tmp_path / "ViT-B-32.json"
    clash.write_text(TINY_JSON.read_text())
    with pytest.raises(ModelSpecError, match="rename the JSON file"):
        load_model(str(clash), device="cpu")


def test_model_cache_is_bounded_by_count_and_bytes() -> None:
    """Least recently used models go first; the bytes bound counts parameters and buffers."""
    from workers.ml.models import (
        cached_models,
        clear_model_cache,
        configure_model_cache,
        model_nbytes,
    )

    clear_model_cache()
    try:
        configure_model_cache(max_models=2, max_bytes=1 << 40)
        a, b = (load_model(str(TINY_JSON), device="cpu", seed=s) for s in (0, 1))
        assert load_model(str(TINY_JSON), device="cpu", seed=0) is a  # a is now the newest
        c = load_model(str(TINY_JSON), device="cpu", seed=2)
        assert cached_models() == [a, c]  # b, least recently used, was evicted
        size = model_nbytes(a.model)
        tensors = [*a.model.parameters(), *a.model.buffers()]  # incl. non-persistent buffers
        assert size == sum(t.nbytes for t in tensors) > 6_000_000
        configure_model_cache(max_models=4, max_bytes=size + size // 2)
        assert cached_models() == [c]  # two would exceed the bytes
        assert load_model(str(TINY_JSON), device="cpu", seed=1) is not b  # rebuilt
        configure_model_cache(max_models=4, max_bytes=0)
        assert len(cached_models()) == 1  # the newest stays even alone over the bound
    finally:
        configure_model_cache(max_models=4, max_bytes=8 << 30)
        clear_model_cache()


def test_a_worker_bounds_its_model_cache_from_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`IIMM_MODEL_CACHE_MAX_MODELS` reaches the worker's cache (`workers.runner.worker_env`)."""
    from app.config import get_settings
    from workers.ml.models import cached_models, clear_model_cache, configure_model_cache
    from workers.runner import worker_env

    monkeypatch.setenv("IIMM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("IIMM_MODEL_CACHE_MAX_MODELS", "1")
    get_settings.cache_clear()
    worker_env.cache_clear()
    clear_model_cache()
    try:
        assert worker_env().settings.model_cache_max_models == 1
        load_model(str(TINY_JSON), device="cpu", seed=0)
        second = load_model(str(TINY_JSON), device="cpu", seed=1)
        assert cached_models() == [second]
    finally:
        get_settings.cache_clear()
        worker_env.cache_clear()
        configure_model_cache(max_models=4, max_bytes=8 << 30)
        clear_model_cache()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_evicted_cuda_models_give_their_memory_back() -> None:
    """An evicted model's CUDA memory is freed, and the cache's release returns the freed
    blocks to the device (`torch.cuda.empty_cache`): reserved memory falls back."""
    from workers.ml.models import (
        cached_models,
        clear_model_cache,
        configure_model_cache,
        model_nbytes,
    )

    clear_model_cache()
    load_model(str(TINY_JSON), device="cuda", seed=0)  # one-time CUDA set-up out of the way
    clear_model_cache()
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    base, reserved0 = torch.cuda.memory_allocated(), torch.cuda.memory_reserved()
    try:
        configure_model_cache(max_models=2, max_bytes=8 << 30)
        size = model_nbytes(load_model(str(TINY_JSON), device="cuda", seed=0).model)
        load_model(str(TINY_JSON), device="cuda", seed=1)
        assert torch.cuda.memory_allocated() - base >= 2 * size
        assert torch.cuda.memory_reserved() > reserved0
        configure_model_cache(max_models=1, max_bytes=8 << 30)  # evicts seed 0
        assert len(cached_models()) == 1
        assert torch.cuda.memory_allocated() - base < 2 * size
        clear_model_cache()
        torch.cuda.synchronize()
        assert torch.cuda.memory_allocated() == base
        assert torch.cuda.memory_reserved() <= reserved0  # given back, not kept cached
    finally:
        configure_model_cache(max_models=4, max_bytes=8 << 30)
        clear_model_cache()
