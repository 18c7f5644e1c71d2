"""Hostile uploads: each is a 4xx problem+json with a clear detail, answered at once when no
decoding is needed (media type, size, name) or else as the `error` of the failed dataset
(and its ingest job); nothing is left behind but that failed dataset's row."""

from __future__ import annotations

import io
import stat
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.service.stack import Stack, embedded_stack, ingested

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def api(workdir: Path) -> Iterator[Stack]:
    """An embedded API and worker with small limits."""
    data_dir = Path(tempfile.mkdtemp(prefix="hostile-", dir=workdir))
    stack = embedded_stack(data_dir, IIMM_MAX_UPLOAD_BYTES="3000000", IIMM_MAX_IMAGE_PIXELS="20000")
    stack.start_worker()
    yield stack
    stack.stop()


def _png(size: tuple[int, int] = (16, 16), colour: int = 0) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (colour, 100, 200)).save(buf, "PNG")
    return buf.getvalue()


def _zip(entries: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return buf.getvalue()


def _good(classes: tuple[str, ...] = ("a", "b")) -> dict[str, bytes]:
    return {
        f"{c}/{i}.png": _png(colour=i * 40 + j) for j, c in enumerate(classes) for i in range(3)
    }


def _tar(add: Callable[[tarfile.TarFile], None]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in _good().items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        add(tf)
    return buf.getvalue()


def _tar_symlink(tf: tarfile.TarFile) -> None:
    info = tarfile.TarInfo("a/evil.png")
    info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
    tf.addfile(info)


def _tar_slip(tf: tarfile.TarFile) -> None:
    data = _png()
    info = tarfile.TarInfo("../../escaped.png")
    info.size = len(data)
    tf.addfile(info, io.BytesIO(data))


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 100, 200)).save(buf, "JPEG")
    return buf.getvalue()


def _tar_absolute(tf: tarfile.TarFile) -> None:
    data = _png()
    info = tarfile.TarInfo("/tmp/newcomer13/abs.png")
    info.size = len(data)
    tf.addfile(info, io.BytesIO(data))


def _bomb() -> bytes:
    return _zip({**_good(), "a/bomb.png": b"\0" * 20_000_000})


def _truncated() -> bytes:
    return _zip({**_good(), "b/cut.png": _png((64, 64))[:60]})


CASES = {
    "zip slip": (lambda: _zip({**_good(), "../evil.png": _png()}), 422, ".."),
    "absolute path": (lambda: _zip({**_good(), "/tmp/evil.png": _png()}), 422, "absolute"),
    "zip symlink": (lambda: _zip(_good(), {"a/link.png": "/etc/passwd"}), 422, "link"),
    "tar symlink": (lambda: _tar(_tar_symlink), 422, "link"),
    "tar slip": (lambda: _tar(_tar_slip), 422, ".."),
    "tar absolute": (lambda: _tar(_tar_absolute), 422, "absolute path: '/tmp/newcomer13/abs.png'"),
    "zip bomb": (_bomb, 413, "raise IIMM_MAX_COMPRESSION_RATIO (now 200.0)"),
    "truncated zip": (lambda: _zip(_good())[:300], 422, "upload.zip is not a readable zip"),
    "pixel limit": (lambda: _zip({**_good(), "a/huge.png": _png((400, 400))}), 422, "pixels"),
    "truncated image": (_truncated, 422, "cut.png"),
    "empty archive": (lambda: _zip({}), 422, ""),
    "single class": (lambda: _zip(_good(("only",))), 422, "2 classes"),
    "not an archive": (lambda: b"hello, not a zip", 422, "not a readable zip archive"),
    # Pillow's own messages name the file by its server path: the detail names the member
    "not a png": (lambda: _zip({**_good(), "a/bad.png": b"not png data"}), 422, "a/bad.png"),
    "not a jpeg": (lambda: _zip({**_good(), "b/extra.jpg": b"not jpeg"}), 422, "b/extra.jpg"),
    "truncated jpeg": (lambda: _zip({**_good(), "b/cut.jpg": _jpeg()[:200]}), 422, "b/cut.jpg"),
}


def _state(stack: Stack) -> tuple[list[str], list[Path]]:
    """The datasets that did not fail, and every stored or temporary file."""
    with stack.client() as c:
        ids = [d["id"] for d in c.get("/v1/datasets").json()["items"] if d["status"] != "failed"]
    files = []
    for kind in ("datasets", "uploads"):
        stored = stack.data_dir / "artifacts" / kind
        files += sorted(stored.rglob("*")) if stored.exists() else []
    return ids, files + sorted((stack.data_dir / "tmp").rglob("*"))


def _assert_problem(resp: httpx.Response, status: int, word: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM)
    assert word.lower() in resp.json()["detail"].lower(), resp.json()["detail"]


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_archive(api: Stack, case: str) -> None:
    make, status, word = CASES[case]
    before = _state(api)
    with api.client() as c:
        resp = c.post(
            "/v1/datasets:upload", data={"name": "hostile"}, files={"file": ("d.zip", make())}
        )
        resp = ingested(c, resp)
    _assert_problem(resp, status, word)
    detail = resp.json()["detail"]  # also the ingest job's `error` (`ingested` checks it)
    for server_path in (str(api.data_dir), str(api.data_dir.parent), "iimm-ingest-"):
        assert server_path not in detail, detail
    assert httpx.get(f"{api.url}/healthz").status_code == 200
    assert _state(api) == before


def test_manifest_naming_missing_files(api: Stack) -> None:
    csv = b"path,label,split\na/0.png,a,train\nb/0.png,b,train\nmissing/x.png,a,test\n"
    archive = _zip(_good())
    with api.client() as c:
        resp = c.post(
            "/v1/datasets:upload",
            data={"name": "manifest"},
            files={"file": ("d.zip", archive), "manifest": ("m.csv", csv)},
        )
        resp = ingested(c, resp)
    _assert_problem(resp, 422, "missing")
    assert _state(api)[0] == []


def test_wrong_content_type_and_oversize(api: Stack) -> None:
    with api.client() as c:
        _assert_problem(
            c.post("/v1/datasets", content=b"x", headers={"content-type": "text/plain"}),
            415,
            "content type",
        )
        zipped = _zip(_good())
        # one body type per operation: each points at the other
        resp = c.post("/v1/datasets", data={"name": "m"}, files={"file": ("d.zip", zipped)})
        _assert_problem(resp, 415, ":upload")
        _assert_problem(c.post("/v1/datasets:upload", json={"name": "j", "uri": "x"}), 415, "JSON")
        resp = c.post(
            "/v1/datasets:upload", data={"name": "a/b"}, files={"file": ("d.zip", zipped)}
        )
        _assert_problem(resp, 422, "letters, digits")
        big = np.random.default_rng(0).bytes(3_500_000)
        resp = c.post("/v1/datasets:upload", data={"name": "big"}, files={"file": ("d.zip", big)})
        # the configured file limit and its setting, beside the body's (which adds framing)
        _assert_problem(resp, 413, "file may be at most 3000000 bytes (IIMM_MAX_UPLOAD_BYTES)")
        # a file just over the limit, its body within the framing allowance: the same setting
        files = {"file": ("d.zip", big[:3_010_000])}
        resp = c.post("/v1/datasets:upload", data={"name": "big"}, files=files)
        _assert_problem(resp, 413, "limit of 3000000 bytes (IIMM_MAX_UPLOAD_BYTES)")
        huge_json = b'{"name": "x", "uri": "' + b"a" * 17_000_000 + b'"}'
        resp = c.post(
            "/v1/datasets", content=huge_json, headers={"content-type": "application/json"}
        )
        _assert_problem(resp, 413, "(IIMM_MAX_JSON_BYTES)")
    assert httpx.get(f"{api.url}/healthz").status_code == 200
    assert _state(api)[0] == []


def test_good_upload_still_works(api: Stack) -> None:
    with api.client() as c:
        resp = c.post(
            "/v1/datasets:upload", data={"name": "fine"}, files={"file": ("d.zip", _zip(_good()))}
        )
        resp = ingested(c, resp)
    assert resp.status_code == 200, resp.text
    assert resp.json()["class_names"] == ["a", "b"]
