"""Undefined measures as null with a reason (never failing the others), and prompts the
tokenizer truncates into collisions, named in the embed job, meta.json and the scores; on the
embedded and the production stack with a real worker and a tiny open_clip model."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.measures import ALL_MEASURES, compute_measures
from app.measures.registry import BASELINES
from tests.service.stack import Stack, wait_job
from tests.service.test_api import add_tiny, upload

CASES = Path(__file__).resolve().parents[1] / "fixtures" / "cases"
CORVUS = "kingdom animalia phylum chordata class aves order passeriformes family corvidae genus "
CORAX, CORONE = CORVUS + "corvus species corax", CORVUS + "corvus species corone"


@pytest.mark.parametrize(
    ("case", "undefined"),
    [
        ("one_class_present.npz", set(BASELINES)),
        ("two_by_two.npz", {"gbc"}),
    ],
)
def test_undefined_measures_are_null_with_a_reason(
    stack: Stack, case: str, undefined: set[str]
) -> None:
    data = (CASES / case).read_bytes()
    arrays = np.load(io.BytesIO(data))
    defined = compute_measures(arrays["images"], arrays["texts"], arrays["labels"])
    with stack.client() as c:
        resp = c.post(
            "/v1/measures:upload",
            files={"file": (case, data)},
            data={"measures": ",".join(ALL_MEASURES)},
        )
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert {k for k, v in body["measures"].items() if v is None} == undefined
        assert set(body["reasons"]) == undefined
        assert all("undefined on these data" in r for r in body["reasons"].values())
        for name, value in defined.items():
            assert body["measures"][name] == pytest.approx(value, rel=1e-9)
        as_json = c.post(
            "/v1/measures",
            json={**{k: arrays[k].tolist() for k in ("images", "texts", "labels")},
                  "measures": ["iimm", "gbc"]},
        ).json()  # fmt: skip
        assert as_json["measures"]["gbc"] is None and "gbc" in as_json["reasons"]["gbc"]
        assert as_json["measures"]["iimm"] == pytest.approx(defined["iimm"], rel=1e-9)


def _long_names_with_tiny_test(tmp: Path) -> Path:
    """The field case's classes with an explicit test split: one test image for `pica pica`."""
    out = tmp / "corvids.zip"
    with zipfile.ZipFile(CASES / "long_classnames.zip") as src, zipfile.ZipFile(out, "w") as zf:
        for info in src.infolist():
            cls, file = info.filename.split("/")
            split = "test" if file in ("0.png", "1.png") else "train"
            if cls == "pica_pica" and file == "1.png":
                continue
            zf.writestr(f"{split}/{cls}/{file}", src.read(info))
        buf = io.BytesIO()
        Image.new("RGB", (8, 8), (1, 2, 3)).save(buf, "PNG")
        zf.writestr("train/pica_pica/9.png", buf.getvalue())
    return out


def test_truncated_prompts_that_collide_are_named(stack: Stack, tmp_path: Path) -> None:
    with stack.client() as c:
        ds = upload(c, _long_names_with_tiny_test(tmp_path))
        assert ds.status_code == 200, ds.text  # its ingest job made it ready
        ds = ds.json()
        assert ds["class_names"] == [CORAX, CORONE, "pica pica"]
        [small] = ds["warnings"]
        assert small["code"] == "small_test_split" and small["items"] == ["pica pica"]
        body = {"type": "embed", "model_id": add_tiny(c)["id"], "dataset_id": ds["id"]}
        bogus = c.post("/v1/jobs", json={**body, "prompts": "bogus"})
        assert bogus.status_code == 422 and "clip_imagenet_80" in bogus.json()["detail"]
        job = wait_job(c, c.post("/v1/jobs", json=body).json()["id"])
        assert job["status"] == "succeeded", job
        prompts = job["result"]["prompts"]
        assert prompts["context_length"] == 16
        assert prompts["colliding_classes"] == [[CORAX, CORONE]]
        assert prompts["truncated_classes"] == [CORAX, CORONE]
        assert any("identical prompts" in w for w in job["result"]["warnings"])
        score = c.post("/v1/jobs", json={**body, "type": "score", "measures": ["iimm", "gbc"]})
        score = wait_job(c, score.json()["id"])
        assert score["status"] == "succeeded", score
        result = score["result"]
        assert result["measures"]["gbc"] is None
        assert "2 samples per class" in result["reasons"]["gbc"]
        assert isinstance(result["measures"]["iimm"], float)
        rows = {s["measure"]: s for s in c.get(score["links"]["scores"]).json()["items"]}
        assert rows["gbc"]["value"] is None and rows["gbc"]["reason"] == result["reasons"]["gbc"]
        assert rows["iimm"]["reason"] is None
        warnings = rows["iimm"]["warnings"]
        assert any(CORAX in w and CORONE in w and "identical prompts" in w for w in warnings)
        assert any("truncated" in w for w in warnings)
        assert any("fewer than 2 images in split 'test'" in w and "pica pica" in w
                   for w in warnings)  # fmt: skip
