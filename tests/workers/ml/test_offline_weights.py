"""Weights on a machine without network: a clear error at once when they are not cached
(no minute of hub retries), and the cached copy when they are."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
import torch

from workers.ml.models import WeightsNotFoundError, clear_model_cache, load_model

from .conftest import TINY_JSON


@pytest.fixture
def unreachable_hub(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Network allowed (HF_HUB_OFFLINE unset) but the hub's address refuses connections;
    returns the calls that reached huggingface_hub's download function."""
    from huggingface_hub import constants
    from open_clip import pretrained

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    calls: list[Any] = []
    real = pretrained.hf_hub_download

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append((args, kwargs, constants.HF_HUB_OFFLINE))
        return real(*args, **kwargs)

    monkeypatch.setattr(pretrained, "hf_hub_download", spy)
    return calls


def test_uncached_weights_fail_without_trying_to_download(
    tmp_path: Path, unreachable_hub: list[Any]
) -> None:
    cache = tmp_path / "weights-cache"
    for spec, repo in (("RN50@openai", "timm/resnet50_clip.openai"),
                       ("hf-hub:timm/ViT-B-16-SigLIP", "timm/ViT-B-16-SigLIP")):  # fmt: skip
        with pytest.raises(WeightsNotFoundError) as err:
            load_model(spec, device="cpu", cache_dir=cache)
        message = str(err.value)
        assert "unreachable" in message and str(cache) in message and repo in message
    assert unreachable_hub == []  # one probe of the hub, no download (and no retries)


def _cached_repo(cache: Path, repo: str) -> dict[str, torch.Tensor]:
    """`repo` as huggingface_hub caches it: the tiny CLIP's config and random weights."""
    import open_clip
    from safetensors.torch import save_file

    cfg = json.loads(TINY_JSON.read_text())
    torch.manual_seed(7)
    model = open_clip.model.CLIP(**cfg)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    commit = "0" * 40
    root = cache / f"models--{repo.replace('/', '--')}"
    snapshot = root / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(commit)
    (snapshot / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg}))
    save_file(state, str(snapshot / "open_clip_model.safetensors"))
    return state


def test_cached_weights_load_when_the_hub_is_unreachable(
    tmp_path: Path, unreachable_hub: list[Any]
) -> None:
    cache = tmp_path / "hf-cache"
    state = _cached_repo(cache, "local/tiny-clip")
    clear_model_cache()
    loaded = load_model("hf-hub:local/tiny-clip", device="cpu", cache_dir=cache)
    got = loaded.model.state_dict()
    assert set(got) == set(state)
    assert all(torch.equal(got[k], state[k]) for k in state)
    # every hub call ran in offline mode: straight from the cache, no request
    assert unreachable_hub and all(offline for _, _, offline in unreachable_hub)
    from huggingface_hub import constants

    assert constants.HF_HUB_OFFLINE is False  # switched back after the load
