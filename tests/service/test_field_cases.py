"""Datasets as users really have them (../shared/cases and generated inputs of the same kinds),
through `POST /v1/datasets:upload` and its ingest job on the embedded and the production
stack: each problem is the failed dataset's `error` (and its job's `error`)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.service.conftest import SharedStacks
from tests.service.stack import Stack, ingested

CASES = Path(__file__).resolve().parents[1] / "fixtures" / "cases"
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module", params=["embedded", "production"])
def api(request: pytest.FixtureRequest, shared_stacks: SharedStacks) -> Stack:
    """An API of each kind with its worker (uploads are validated by ingest jobs); the
    process's shared stacks (the cases upload copies into the admin project: names are
    unique, no test counts what the project holds)."""
    return shared_stacks.get(request.param)


def _case(name: str) -> bytes:
    return (CASES / name).read_bytes()


def _upload(
    stack: Stack, name: str, archive: bytes, manifest: bytes | None = None, **fields: str
) -> httpx.Response:
    files = {"file": ("data.zip", archive)}
    if manifest is not None:
        files["manifest"] = ("labels.csv", manifest)
    with stack.client() as c:  # cases share a project and some their content: copies allowed
        resp = c.post(
            "/v1/datasets:upload", data={"name": name, **fields}, files=files,
            params={"allow_duplicate": "true"},
        )  # fmt: skip
        return ingested(c, resp)


def _problem(resp: httpx.Response, stack: Stack, *words: str) -> str:
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM)
    detail = resp.json()["detail"]
    for word in words:
        assert word in detail, detail
    assert str(stack.data_dir) not in detail and "/tmp" not in detail, detail
    return detail


def _png(colour: int = 0, size: tuple[int, int] = (8, 8)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (colour, 90, 160)).save(buf, "PNG")
    return buf.getvalue()


class LegacyZipInfo(zipfile.ZipInfo):
    """A zip entry whose name is stored in a legacy code page without the UTF-8 flag, as
    Windows' archive tools and old Info-ZIP write them."""

    def __init__(self, name: str, encoding: str) -> None:
        super().__init__(name)
        self.raw_name = name.encode(encoding)

    def _encodeFilenameFlags(self) -> tuple[bytes, int]:  # noqa: N802 - zipfile's hook
        return self.raw_name, self.flag_bits & ~0x800


def _zip(entries: dict[str, bytes], *, encoding: str | None = None) -> bytes:
    """A zip; with `encoding`, names are stored in it without the UTF-8 flag (legacy tools)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            zf.writestr(LegacyZipInfo(name, encoding) if encoding else name, data)
    return buf.getvalue()


def _folders(classes: list[str], per_class: int = 3, prefix: str = "") -> dict[str, bytes]:
    return {
        f"{prefix}{c}/{i}.png": _png(colour=30 * j + i)
        for j, c in enumerate(classes)
        for i in range(per_class)
    }


def test_file_and_folder_with_one_name_is_a_422_naming_it(api: Stack) -> None:
    resp = _upload(api, "clash", _case("file_and_dir_same_name.zip"))
    _problem(resp, api, "dog", "file and also a folder")
    other = _zip({**_folders(["a", "b"]), "b/2.png/x.png": _png()})
    _problem(_upload(api, "clash2", other), api, "b/2.png", "file and also a folder")


def test_duplicate_entry_is_a_422_without_server_paths(api: Stack) -> None:
    _problem(_upload(api, "dup", _case("duplicate_entry.zip")), api, "duplicate entry cat/0.png")


def test_names_equal_once_normalised_clash(api: Stack) -> None:
    nfc, nfd = "caf\u00e9", "cafe\u0301"
    entries = {**_folders(["bar", nfc]), f"{nfd}/0.png": _png(7)}
    _problem(_upload(api, "nfclash", _zip(entries)), api, f"duplicate entry {nfc}/0.png")


def test_nfd_and_nfc_class_folders_are_one_class(api: Stack) -> None:
    resp = _upload(api, "cafe", _case("nfd_vs_nfc_classes.zip"))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["class_names"] == ["bar", "caf\u00e9"]
    assert body["splits"]["train"] == 6 and body["splits"]["test"] == 6


@pytest.mark.parametrize(
    ("encoding", "classes"),
    [
        ("cp866", ["кошка", "собака"]),
        ("cp932", ["ねこ", "犬"]),
        ("cp437", ["café", "naïve"]),
        ("gbk", ["北京", "上海"]),
    ],
)
def test_legacy_name_encodings_are_decoded(api: Stack, encoding: str, classes: list[str]) -> None:
    archive = _zip(_folders(classes), encoding=encoding)
    resp = _upload(api, f"legacy-{encoding}", archive)
    assert resp.status_code == 200, resp.text
    assert resp.json()["class_names"] == sorted(classes)


def test_name_encoding_can_be_given(api: Stack) -> None:
    archive = _zip(_folders(["고양이", "개"]), encoding="cp949")
    resp = _upload(api, "korean", archive, name_encoding="cp949")
    assert resp.status_code == 200, resp.text
    assert resp.json()["class_names"] == sorted(["고양이", "개"])
    _problem(_upload(api, "badenc", archive, name_encoding="klingon"), api, "klingon")


def test_ignored_files_are_listed_with_counts(api: Stack) -> None:
    entries = {
        **_folders(["a", "b"], prefix="pets/"),
        "__MACOSX/pets/a/._0.png": b"\0\5\26\7",
        "__MACOSX/pets/b/._0.png": b"\0\5\26\7",
        "pets/a/._1.png": b"\0\5\26\7",
        "pets/.DS_Store": b"x",
        "pets/README.txt": b"about these pets",
        "pets/a/Thumbs.db": b"x",
        "pets/stray.png": _png(5),
    }
    resp = _upload(api, "macos", _zip(entries))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["class_names"] == ["a", "b"]
    counts = {s["reason"]: s["count"] for s in body["skipped"]}
    assert counts == {"macos_metadata": 3, "hidden": 1, "not_image": 2, "outside_class_folders": 1}
    examples = {s["reason"]: s["examples"] for s in body["skipped"]}
    assert examples["not_image"] == ["pets/README.txt", "pets/a/Thumbs.db"]
    with api.client() as c:
        assert c.get(f"/v1/datasets/{body['id']}").json()["skipped"] == body["skipped"]


def test_manifest_labels_are_text(api: Stack) -> None:
    resp = _upload(api, "zeros", _case("manifest_images.zip"), _case("manifest_leading_zero.csv"))
    assert resp.status_code == 200, resp.text
    assert resp.json()["class_names"] == ["001", "002"]
    assert sum(resp.json()["splits"][s] for s in ("train", "test")) == 8


def test_manifest_empty_label_is_a_422_naming_the_row(api: Stack) -> None:
    resp = _upload(api, "empty", _case("manifest_images.zip"), _case("manifest_empty_label.csv"))
    _problem(resp, api, "empty label", "row 8 (line 9)")


def test_manifest_dialects(api: Stack) -> None:
    """Excel on a European locale: BOM, CRLF, semicolons, quoted fields, spaces in paths."""
    images = {f"my images/img {i}, v2.png": _png(i) for i in range(6)}
    rows = [f'"my images/img {i}, v2.png";{"Zoë" if i % 2 else "Ünïcode"}' for i in range(6)]
    csv = ("\ufeffPath;Label\r\n" + "\r\n".join(rows) + "\r\n").encode("utf-8")
    resp = _upload(api, "excel", _zip(images), csv)
    assert resp.status_code == 200, resp.text
    assert resp.json()["class_names"] == ["Zoë", "Ünïcode"]
    utf16 = "path\tlabel\n" + "".join(f"my images/img {i}, v2.png\t{i % 2}\n" for i in range(6))
    resp = _upload(api, "utf16", _zip(images), utf16.encode("utf-16"))
    assert resp.status_code == 200, resp.text
    assert resp.json()["class_names"] == ["0", "1"]


def test_manifest_unused_files_are_listed(api: Stack) -> None:
    images = {f"img/{i}.png": _png(i) for i in range(6)}
    csv = "path,label\n" + "".join(f"img/{i}.png,{'ab'[i % 2]}\n" for i in range(5))
    resp = _upload(api, "unused", _zip(images), csv.encode())
    assert resp.status_code == 200, resp.text
    assert resp.json()["skipped"] == [
        {"reason": "not_in_manifest", "description": "not named by the manifest", "count": 1,
         "examples": ["img/5.png"]}
    ]  # fmt: skip


def test_exif_that_cannot_be_rewritten_is_accepted(api: Stack) -> None:
    resp = _upload(api, "exif", _case("exif_odd_rational.zip"))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["class_names"] == ["cat", "dog"]
    assert not [w for w in body["warnings"] if w["code"] == "exif_orientation_not_applied"]


def test_small_test_split_is_a_warning(api: Stack) -> None:
    entries = {
        **{f"train/{c}/{i}.png": _png(i + 10 * j) for j, c in enumerate("ab") for i in range(3)},
        "test/a/0.png": _png(1),
        "test/a/1.png": _png(2),
        "test/b/0.png": _png(3),
    }
    resp = _upload(api, "tiny", _zip(entries))
    assert resp.status_code == 200, resp.text
    [warning] = resp.json()["warnings"]
    assert warning["code"] == "small_test_split" and warning["items"] == ["b"]


def test_webdataset_and_huggingface_folders_are_registered(api: Stack) -> None:
    from tests.app.imagedata.test_formats import CLASSES, _hf_dataset, _shard

    wds = api.data_dir / "wds"
    (wds / "test").mkdir(parents=True)
    (wds / "train").mkdir()
    _shard(wds / "train" / "0.tar", [(i, i % 3) for i in range(6)])
    _shard(wds / "test" / "0.tar", [(i, i % 3) for i in range(6, 12)])
    (wds / "classnames.txt").write_text("\n".join(CLASSES))
    hf = api.data_dir / "hf"
    _hf_dataset().save_to_disk(str(hf))  # type: ignore[attr-defined]
    with api.client() as c:
        for name, path, fmt in (("wds", wds, "webdataset"), ("hf", hf, "huggingface")):
            resp = c.post("/v1/datasets", json={"name": name, "uri": path.as_uri()})
            resp = ingested(c, resp)
            assert resp.status_code == 200, resp.text
            body = resp.json()
            assert body["format"] == fmt and body["class_names"] == CLASSES
            assert body["splits"]["test"] in (4, 6)


def test_fmow_wilds_root_is_registered(api: Stack) -> None:
    from tests.app.imagedata.test_fmow import ROWS, _fmow_root

    root = _fmow_root(api.data_dir / "wilds")
    bare = api.data_dir / "wilds-bare" / "fmow_v1.1"
    bare.mkdir(parents=True)
    with api.client() as c:
        resp = ingested(c, c.post("/v1/datasets", json={"name": "fmow", "uri": root.as_uri()}))
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["format"] == "fmow" and body["class_names"] == [
            "airport",
            "airport hangar",
            "dam",
            "zipper",
        ]
        for split in ("train", "val", "test"):
            assert body["splits"][split] == sum(r[3] == split for r in ROWS), split
        bare_ref = {"name": "bare", "uri": bare.parent.as_uri()}
        bad = ingested(c, c.post("/v1/datasets", json=bare_ref))
        assert bad.status_code == 422, bad.text
        assert "fmow_v1.1/rgb_metadata.csv" in bad.text and str(api.data_dir) not in bad.text
