"""Registering a model from files the server cannot see, over real HTTP: an architecture
JSON and a safetensors checkpoint, used by a real embed job; a checkpoint whose pickle would
run code is refused with a 422 and leaves nothing behind."""

from __future__ import annotations

import io
import os
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch

from tests.service.conftest import SharedStacks
from tests.service.stack import ROOT, Stack, wait_job
from tests.service.test_api import assert_problem, upload

TINY = ROOT / "workers" / "ml" / "configs" / "tiny-clip.json"


class Evil:
    def __reduce__(self) -> tuple:
        return (os.system, ("touch /tmp/iimm-upload-pwned",))


@pytest.fixture(scope="module")
def stack(shared_stacks: SharedStacks) -> Stack:
    """The process's embedded stack (tests use their own projects and model ids)."""
    return shared_stacks.get("embedded")


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _weights(fmt: str, state: dict[str, Any]) -> bytes:
    from safetensors.torch import save

    if fmt == "safetensors":
        return save({k: v.contiguous() for k, v in state.items()})
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def _post(c: httpx.Client, name: str, arch: bytes, weights: bytes, filename: str) -> Any:
    files = {"architecture": ("arch.json", arch, "application/json"),
             "checkpoint": (filename, weights, "application/octet-stream")}  # fmt: skip
    return c.post("/v1/models:upload", data={"name": name}, files=files)


def _tiny_state() -> dict[str, torch.Tensor]:
    import json

    import open_clip

    torch.manual_seed(3)
    return open_clip.model.CLIP(**json.loads(TINY.read_text())).state_dict()


@pytest.mark.parametrize("fmt", ["safetensors", "pt"])
def test_uploaded_model_embeds(stack: Stack, shapes_zip: Path, fmt: str) -> None:
    with stack.client(stack.new_key(_name("up"))) as c:
        state = _tiny_state()
        resp = _post(c, _name("tiny"), TINY.read_bytes(), _weights(fmt, state), f"w.{fmt}")
        assert resp.status_code == 201, resp.text
        model = resp.json()
        assert resp.headers["location"] == f"/v1/models/{model['id']}"
        dataset = upload(c, shapes_zip).json()["id"]
        body = {"type": "embed", "model_id": model["id"], "dataset_id": dataset}
        job = wait_job(c, c.post("/v1/jobs", json=body).json()["id"])
        assert job["status"] == "succeeded", job
        assert job["result"]["n"] == 12
        folder = stack.data_dir / "artifacts" / "models" / model["id"]
        assert sorted(p.suffix for p in folder.iterdir()) == sorted([".json", f".{fmt}"])
        gone = c.delete(f"/v1/models/{model['id']}", params={"cascade": "true"})
        assert gone.status_code == 204, gone.text
        assert not folder.exists()  # the uploaded files go with the model


def _stored(stack: Stack) -> set[str]:
    models = stack.data_dir / "artifacts" / "models"
    return {p.name for p in models.iterdir()} if models.exists() else set()


def test_unsafe_or_broken_uploads_are_refused(stack: Stack) -> None:
    before = _stored(stack)
    with stack.client(stack.new_key(_name("bad"))) as c:
        evil = _weights("pt", {"w": torch.ones(1), "x": Evil()})  # type: ignore[dict-item]
        resp = _post(c, _name("evil"), TINY.read_bytes(), evil, "evil.pt")
        assert_problem(resp, 422, "posix.system", "safetensors")
        assert_problem(_post(c, _name("j"), b"{nope", b"x" * 64, "w.safetensors"), 422, "JSON")
        assert_problem(_post(c, _name("s"), TINY.read_bytes(), b"x" * 64, "w.safetensors"), 422)
        assert c.get("/v1/models").json()["items"] == []
        form = c.post("/v1/models:upload", json={"name": "x"})
        assert form.status_code == 415
    assert not Path("/tmp/iimm-upload-pwned").exists()
    assert _stored(stack) == before  # nothing stored
    assert not list(stack.data_dir.glob("iimm-model-*"))  # nor left in the work area


def test_model_by_uri_under_allowed_root_embeds(
    stack: Stack, shapes_zip: Path, tmp_path: Path
) -> None:
    """`arch` and `pretrained` as file:// URIs under IIMM_ALLOWED_ROOTS register and embed;
    outside them it is a 403 naming the root, a host not allowed a 403 naming the hosts, and
    an unsupported scheme a 422."""
    from safetensors.torch import save_file

    mine = stack.data_dir / "mine" / uuid.uuid4().hex[:8]
    mine.mkdir(parents=True)
    arch, weights = mine / "tiny-uri.json", mine / "tiny-uri.safetensors"
    arch.write_bytes(TINY.read_bytes())
    save_file({k: v.contiguous() for k, v in _tiny_state().items()}, str(weights))
    outside = tmp_path / "tiny-out.safetensors"
    outside.write_bytes(weights.read_bytes())
    with stack.client(stack.new_key(_name("uri"))) as c:
        body = {"name": _name("by-uri"), "arch": arch.as_uri(), "pretrained": weights.as_uri()}
        resp = c.post("/v1/models", json=body)
        assert resp.status_code == 201, resp.text
        model = resp.json()
        assert model["pretrained"] == str(weights.resolve())
        dataset = upload(c, shapes_zip).json()["id"]
        job_body = {"type": "embed", "model_id": model["id"], "dataset_id": dataset}
        job = wait_job(c, c.post("/v1/jobs", json=job_body).json()["id"])
        assert job["status"] == "succeeded", job
        assert job["result"]["n"] == 12

        bad = {"name": _name("out"), "arch": arch.as_uri(), "pretrained": outside.as_uri()}
        assert_problem(c.post("/v1/models", json=bad), 403, str(stack.data_dir))
        remote = {"name": _name("r"), "arch": "https://example.org/a.json", "pretrained": "random"}
        assert_problem(c.post("/v1/models", json=remote), 403, "IIMM_ALLOWED_HOSTS")
        ftp = {"name": _name("f"), "arch": "ftp://example.org/a.json"}
        assert_problem(c.post("/v1/models", json=ftp), 422, "unsupported URI scheme")
        names = [m["name"] for m in c.get("/v1/models").json()["items"]]
        assert names == [body["name"]]


def test_remote_checkpoint_is_fetched_once_and_checked(tmp_path: Path) -> None:
    """A remote `pretrained` is copied once into the worker cache (fsspec, here its memory
    filesystem) and must pass the weights-only check; a pickle that runs code fails the job."""
    from types import SimpleNamespace

    import fsspec
    from safetensors.torch import save

    from app.artifacts import Storage
    from workers.tasks.base import JobError
    from workers.tasks.datasets import model_spec, remote_copy, remote_key

    storage = Storage(str(tmp_path / "store"), cache_dir=tmp_path / "cache")
    ctx: Any = SimpleNamespace(settings=SimpleNamespace(data_dir=tmp_path), storage=storage)
    fs = fsspec.filesystem("memory")
    state = {"w": torch.arange(4.0)}
    fs.pipe("/ckpt/good.safetensors", save(state))
    local = remote_copy(ctx, "memory://ckpt/good.safetensors")
    assert local.name == "good.safetensors" and local.read_bytes() == save(state)
    fs.rm("/ckpt/good.safetensors")
    assert remote_copy(ctx, "memory://ckpt/good.safetensors") == local  # cached, not refetched
    storage.cache.release()  # the job ended
    assert storage.cache.prune(check_sources=True).gone == []  # a reference's copy is not
    assert storage.cache.usage() == (len(save(state)), 1)  # checked; it counts in the bound
    with pytest.raises(JobError, match="cannot fetch"):
        remote_copy(ctx, "memory://ckpt/missing.safetensors")

    evil = _weights("pt", {"w": torch.ones(1), "x": Evil()})  # type: ignore[dict-item]
    uri = "https://models.example/evil.pt"
    storage.cache.get(remote_key(uri), "", lambda into: (into / "evil.pt").write_bytes(evil))
    row = {"arch": "ViT-B-32", "pretrained": uri, "preset": None}
    with pytest.raises(JobError, match=r"posix\.system"):
        model_spec(ctx, row)
    assert not Path("/tmp/iimm-upload-pwned").exists()
