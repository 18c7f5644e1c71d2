"""Registering a model from files the server cannot see, over real HTTP: an architecture
JSON and a safetensors checkpoint, used by a real embed job; a checkpoint whose pickle would
run code is refused with a 422 and leaves nothing behind."""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch

from tests.service.stack import ROOT, Stack, embedded_stack, wait_job
from tests.service.test_api import assert_problem, upload

TINY = ROOT / "workers" / "ml" / "configs" / "tiny-clip.json"


class Evil:
    def __reduce__(self) -> tuple:
        return (os.system, ("touch /tmp/iimm-upload-pwned",))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    st = embedded_stack(tmp_path_factory.mktemp("upload"))
    st.start_worker()
    try:
        yield st
    finally:
        st.stop()


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
