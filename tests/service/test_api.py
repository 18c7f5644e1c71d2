"""API tests over real HTTP with a real worker process, on embedded and production stacks."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.service.stack import TINY, Stack, ingested, make_task, wait_job, zip_dir

PROBLEM = "application/problem+json"


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def upload(
    client: httpx.Client,
    archive: Path,
    name: str | None = None,
    allow_duplicate: bool = True,
    *,
    wait: bool = True,
) -> httpx.Response:
    """Upload `archive` and wait for its ingest job (`stack.ingested`: the dataset, 200, or
    its problem; with `wait=False` the 202 as it came: where no worker runs yet, or the
    test runs the jobs itself); by default as a copy when the project has the same content
    (tests share projects and archives)."""
    params = {"allow_duplicate": "true"} if allow_duplicate else {}
    with archive.open("rb") as fh:
        files = {"file": (archive.name, fh, "application/zip")}
        data = {"name": name or _name("ds")}
        resp = client.post("/v1/datasets:upload", data=data, files=files, params=params)
    return ingested(client, resp) if wait else resp


def add_tiny(client: httpx.Client) -> dict[str, Any]:
    resp = client.post(
        "/v1/models", json={"name": _name("tiny"), "arch": TINY, "pretrained": "random"}
    )
    assert resp.status_code == 201, resp.text
    return resp.json()


def assert_problem(resp: httpx.Response, status: int, *words: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM)
    body = resp.json()
    assert body["status"] == status and body["detail"]
    assert body["type"].startswith("/problems/") and body["instance"].startswith("/")
    for word in words:
        assert word in body["detail"], body["detail"]


def test_health_and_metrics(stack: Stack) -> None:
    assert httpx.get(f"{stack.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{stack.url}/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ok", ready.text
    if stack.kind == "production":
        assert ready.json()["checks"]["broker"] == "ok"
    metrics = httpx.get(f"{stack.url}/metrics").text
    assert "iimm_http_requests_total{" in metrics  # this very request's predecessors
    assert "# TYPE iimm_queue_depth gauge" in metrics
    # The service runs the measures through the C kernel the install built.
    assert 'measures_kernel="c/' in metrics


def test_errors_are_problems(stack: Stack) -> None:
    assert_problem(httpx.get(f"{stack.url}/v1/jobs"), 401, "API key")
    assert_problem(httpx.get(f"{stack.url}/v1/jobs", headers={"X-API-Key": "nope"}), 401)
    with stack.client() as c:
        assert_problem(c.get("/v1/nowhere"), 404)
        assert_problem(c.put("/v1/jobs"), 405)
        assert_problem(c.post("/v1/jobs", json={"type": "embed"}), 422, "model_id")
        assert_problem(c.post("/v1/jobs", json={"type": "teleport"}), 422)
        assert_problem(
            c.post("/v1/jobs", content=b"{not json", headers={"content-type": "application/json"}),
            422,
        )
        assert_problem(c.get("/v1/jobs", params={"cursor": "!!!"}), 422, "cursor")
        assert_problem(c.get("/v1/jobs", params={"limit": 0}), 422)
        assert_problem(
            c.post("/v1/models", json={"name": "x", "arch": "NoSuchNet", "pretrained": "random"}),
            422,
            "architecture",
        )
        assert_problem(c.post("/v1/models", json={"name": "x", "arch": "/etc/passwd.json"}), 422)


def test_models_crud(stack: Stack) -> None:
    with stack.client() as c:
        model = add_tiny(c)
        assert model["spec"].endswith("tiny-clip.json@random")
        assert c.get(f"/v1/models/{model['id']}").json()["name"] == model["name"]
        assert_problem(c.post("/v1/models", json={"name": model["name"], "preset": "clip"}), 409)
        preset = c.post("/v1/models", json={"name": _name("clip"), "preset": "clip"}).json()
        assert preset["arch"] == "ViT-B-32" and preset["pretrained"] == "openai"
        ids = [m["id"] for m in c.get("/v1/models").json()["items"]]
        assert model["id"] in ids and preset["id"] in ids
        assert c.delete(f"/v1/models/{preset['id']}").status_code == 204
        assert_problem(c.get(f"/v1/models/{preset['id']}"), 404)


def test_datasets_crud_and_pagination(stack: Stack, shapes_zip: Path) -> None:
    key = stack.new_key(_name("proj"))
    with stack.client(key) as c:
        made = []
        for _ in range(3):
            resp = upload(c, shapes_zip)
            assert resp.status_code == 200 and resp.json()["status"] == "ready", resp.text
            made.append(resp.json())
        ds = made[0]
        assert len(ds["class_names"]) == 6 and ds["splits"]["test"] == 12
        assert_problem(upload(c, shapes_zip, ds["name"]), 409)
        # the same content again is refused by its ingest job, naming the first copy; the
        # dataset stays listed as `failed` (its files removed) until deleted or uploaded again
        same = upload(c, shapes_zip, name="again", allow_duplicate=False)
        assert_problem(same, 409, "same content", "allow_duplicate=true")
        assert made[0]["id"] in same.json()["detail"]
        [failed] = [d for d in c.get("/v1/datasets").json()["items"] if d["name"] == "again"]
        assert failed["status"] == "failed" and failed["error"]["status"] == 409
        assert not (stack.data_dir / "artifacts" / "datasets" / failed["id"]).exists()
        assert not (stack.data_dir / "artifacts" / "uploads" / failed["id"]).exists()
        # a failed dataset's name is free: uploading again replaces it
        again = upload(c, shapes_zip, name="again")
        assert again.status_code == 200 and again.json()["status"] == "ready", again.text
        assert_problem(c.get(f"/v1/datasets/{failed['id']}"), 404)
        made.append(again.json())
        assert len(c.get("/v1/datasets").json()["items"]) == 4
        page1 = c.get("/v1/datasets", params={"limit": 2}).json()
        page2 = c.get("/v1/datasets", params={"limit": 2, "cursor": page1["next_cursor"]}).json()
        ids = [d["id"] for d in page1["items"] + page2["items"]]
        assert ids == [d["id"] for d in reversed(made)] and page2["next_cursor"] is None
        assert c.delete(f"/v1/datasets/{ds['id']}").status_code == 204
        assert_problem(c.get(f"/v1/datasets/{ds['id']}"), 404)
        assert not (stack.data_dir / "artifacts" / "datasets" / ds["id"]).exists()


def test_dataset_reference(stack: Stack, shapes_zip: Path) -> None:
    import zipfile

    folder = stack.data_dir / "refs" / _name("f")
    with zipfile.ZipFile(shapes_zip) as zf:
        zf.extractall(folder)
    with stack.client() as c:
        ref = {"name": _name("ref"), "uri": folder.as_uri()}
        accepted = c.post("/v1/datasets", json=ref, params={"allow_duplicate": "true"})
        assert "format_given" not in accepted.json()["info"]  # the ingest job's note
        ok = ingested(c, accepted)
        assert ok.status_code == 200 and ok.json()["status"] == "ready", ok.text
        assert ok.json()["source"] == "uri" and ok.json()["splits"]["train"] == 36
        roots = json.loads(stack.env["IIMM_ALLOWED_ROOTS"])
        etc = c.post("/v1/datasets", json={"name": "etc", "uri": "file:///etc"})
        assert_problem(etc, 403, "IIMM_ALLOWED_ROOTS", *roots)  # names where files may be
        assert_problem(c.post("/v1/datasets", json={"name": "s3", "uri": "s3://evil/x"}), 403)
        assert_problem(c.post("/v1/datasets", json={"name": "ftp", "uri": "ftp://x/y"}), 422)


def test_torchvision_reference_is_embedded_by_the_worker(stack: Stack) -> None:
    from tests.fixtures.torchvision_files import fake_mnist

    root = fake_mnist(stack.data_dir / "tv" / _name("mnist"), n_train=8, n_test=10)
    with stack.client() as c:
        uri = f"torchvision://MNIST?root={root}"
        ds = c.post("/v1/datasets", json={"name": _name("mnist"), "uri": uri})
        assert ds.status_code == 202, ds.text
        assert ds.json()["format"] == "torchvision" and ds.json()["uri"] == uri
        model = add_tiny(c)
        body = {"type": "embed", "model_id": model["id"], "dataset_id": ds.json()["id"]}
        assert ds.json()["class_names"] == [] and ds.json()["splits"] == {}  # not opened yet
        # submitted at once: the embed job runs once the dataset's ingest job has opened it
        job = wait_job(c, c.post("/v1/jobs", json=body).json()["id"])
        assert job["status"] == "succeeded", job
        assert job["result"]["n"] == 10
        # The ingest job recorded what the API does not read at registration.
        seen = c.get(f"/v1/datasets/{ds.json()['id']}").json()
        assert seen["status"] == "ready" and wait_job(c, seen["job_id"])["status"] == "succeeded"
        assert seen["splits"]["train"] == 8 and seen["splits"]["test"] == 10
        assert "format_given" not in seen["info"] and "format_given" not in ds.json()["info"]
        assert len(seen["class_names"]) == 10 and seen["class_names"][0].startswith("0")
        bad = {"name": "x", "uri": f"torchvision://Places365?root={root}"}
        assert_problem(c.post("/v1/datasets", json=bad), 422, "Places365")
        outside = {"name": "x", "uri": "torchvision://MNIST?root=/etc"}
        assert_problem(c.post("/v1/datasets", json=outside), 403)
        missing = {"name": "x", "uri": f"torchvision://MNIST?root={root}/absent"}
        assert_problem(c.post("/v1/datasets", json=missing), 422, "not a directory")


@pytest.fixture(scope="module")
def unseen_zip(workdir: Path) -> Path:
    """Shapes no other module uploads (6 classes, 8 images each): embedding files are
    content-addressed and shared across projects, and the stack is shared across modules,
    so a first embedding of these is computed here."""
    root = workdir / "api-unseen"
    root.mkdir(exist_ok=True)
    return zip_dir(make_task(root / "shapes", seed=17), root / "unseen.zip")


def test_embed_score_end_to_end(stack: Stack, unseen_zip: Path) -> None:
    with stack.client() as c:
        ds, model = upload(c, unseen_zip).json(), add_tiny(c)
        body = {"type": "embed", "model_id": model["id"], "dataset_id": ds["id"]}
        assert_problem(c.post("/v1/jobs", json={**body, "type": "score"}), 409, "embed")
        resp = c.post("/v1/jobs", json=body, headers={"Idempotency-Key": "k1"})
        assert (
            resp.status_code == 202 and resp.headers["location"] == f"/v1/jobs/{resp.json()['id']}"
        )
        again = c.post("/v1/jobs", json=body, headers={"Idempotency-Key": "k1"})
        assert again.json()["id"] == resp.json()["id"]
        assert_problem(
            c.post("/v1/jobs", json={**body, "split": "train"}, headers={"Idempotency-Key": "k1"}),
            422,
        )
        job = wait_job(c, resp.json()["id"])
        assert job["status"] == "succeeded", job
        assert (
            job["progress"]["fraction"] == 1.0 and job["attempts"] == 1 and job["result"]["n"] == 12
        )
        timing = job["result"]["timing"]  # where the embedding's time went, for operators
        assert timing["images"] == 12 and timing["device"] == "cpu" and timing["seconds"] > 0
        parts = sum(timing[f"{k}_s"] for k in ("loader", "submit", "device", "store"))
        assert timing["submit_s"] > 0 and parts <= timing["seconds"] + 1e-3
        again = wait_job(c, c.post("/v1/jobs", json=body).json()["id"])
        assert again["result"]["reused"] is True and again["result"]["timing"] is None
        score = c.post("/v1/jobs", json={**body, "type": "score", "bootstrap": 50}).json()
        score = wait_job(c, score["id"])
        assert score["status"] == "succeeded", score
        scores = c.get(score["links"]["scores"]).json()["items"]
        by_name = {s["measure"]: s for s in scores}
        assert "iimm" in by_name and by_name["iimm"]["n"] == 12
        assert by_name["iimm"]["ci_low"] <= by_name["iimm"]["value"] <= by_name["iimm"]["ci_high"]
        intervals = score["result"]["intervals"]  # the typed result carries them too
        assert intervals["iimm"] == {k: by_name["iimm"][k] for k in ("ci_low", "ci_high")}
        assert set(intervals) <= set(by_name) and all(by_name[m]["ci_low"] is not None
                                                      for m in intervals)  # fmt: skip
        one = c.get("/v1/scores", params={"model_id": model["id"], "measure": "iimm"}).json()
        assert [s["measure"] for s in one["items"]] == ["iimm"]
        listed = c.get("/v1/jobs", params={"status": "succeeded"}).json()["items"]
        assert {resp.json()["id"], score["id"]} <= {j["id"] for j in listed}


def test_cancel_queued_job(stack: Stack, shapes_zip: Path) -> None:
    key = stack.new_key(_name("cancel"))
    with stack.client(key) as c:
        ds, model = upload(c, shapes_zip).json(), add_tiny(c)
        job = c.post(
            "/v1/jobs",
            json={
                "type": "embed",
                "model_id": model["id"],
                "dataset_id": ds["id"],
                "split": "train",
            },
        ).json()
        cancelled = c.post(f"/v1/jobs/{job['id']}:cancel").json()
        assert cancelled["status"] in ("cancelled", "running", "succeeded")
        final = wait_job(c, job["id"])
        assert final["status"] in ("cancelled", "succeeded")
        assert_problem(c.post(f"/v1/jobs/{job['id']}:cancel"), 409)


def test_tenancy_isolation(stack: Stack, shapes_zip: Path) -> None:
    a, b = stack.new_key(_name("a")), stack.new_key(_name("b"))
    with stack.client(a) as ca, stack.client(b) as cb:
        ds, model = upload(ca, shapes_zip).json(), add_tiny(ca)
        job = ca.post(
            "/v1/jobs", json={"type": "embed", "model_id": model["id"], "dataset_id": ds["id"]}
        ).json()
        for path in (
            f"/v1/datasets/{ds['id']}",
            f"/v1/models/{model['id']}",
            f"/v1/jobs/{job['id']}",
        ):
            assert_problem(cb.get(path), 404)
        assert_problem(cb.delete(f"/v1/datasets/{ds['id']}"), 404)
        assert_problem(cb.delete(f"/v1/models/{model['id']}"), 404)
        assert_problem(cb.post(f"/v1/jobs/{job['id']}:cancel"), 404)
        own = add_tiny(cb)
        assert_problem(
            cb.post(
                "/v1/jobs", json={"type": "embed", "model_id": own["id"], "dataset_id": ds["id"]}
            ),
            404,
        )
        assert cb.get("/v1/datasets").json()["items"] == []
        assert [m["id"] for m in cb.get("/v1/models").json()["items"]] == [own["id"]]
        assert cb.get("/v1/jobs").json()["items"] == []
        wait_job(ca, job["id"])
        assert cb.get("/v1/scores", params={"dataset_id": ds["id"]}).json()["items"] == []
        assert ca.get(f"/v1/datasets/{ds['id']}").status_code == 200


def _arrays(n: int, k: int, d: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "images": rng.normal(size=(n, d)).astype(np.float32),
        "texts": rng.normal(size=(k, d)).astype(np.float32),
        "labels": np.arange(n) % k,
    }


def test_measures_sync_and_job(stack: Stack) -> None:
    with stack.client() as c:
        small = _arrays(20, 4, 8)
        resp = c.post("/v1/measures", json={k: v.tolist() for k, v in small.items()})
        assert resp.status_code == 200, resp.text
        assert set(resp.json()["measures"]) >= {"iimm", "inter_modal", "intra_images"}
        buf = io.BytesIO()
        np.savez(buf, **_arrays(5000, 10, 1000))
        big = c.post(
            "/v1/measures:upload",
            files={"file": ("e.npz", buf.getvalue())},
            data={"variant": "authors"},
        )
        assert big.status_code == 202, big.text
        job = wait_job(c, big.json()["id"])
        assert job["status"] == "succeeded", job
        assert abs(job["result"]["measures"]["iimm"]) < 1
        assert job["result"]["variant"] == "authors"
        pickled = io.BytesIO()
        np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
        assert_problem(
            c.post("/v1/measures:upload", files={"file": ("x.npz", pickled.getvalue())}), 422
        )
        bad = {k: v.tolist() for k, v in small.items()} | {"labels": [0] * 19 + [9]}
        assert_problem(c.post("/v1/measures", json=bad), 422)
        retired = {k: v.tolist() for k, v in small.items()} | {"measures": ["iimm", "ncti"]}
        assert_problem(c.post("/v1/measures", json=retired), 422, "'ncti_seli', 'ncti_ncc'")
        terms = {k: v.tolist() for k, v in small.items()} | {"measures": ["ncti_seli", "ncti_vc"]}
        resp = c.post("/v1/measures", json=terms)
        assert resp.status_code == 200 and set(resp.json()["measures"]) == {"ncti_seli", "ncti_vc"}
        assert_problem(
            c.post("/v1/measures", content=b"x", headers={"content-type": "text/plain"}), 415
        )


def test_measures_variant_json_and_upload(stack: Stack) -> None:
    """`variant` (default "definition") reaches the baselines on both paths and is echoed; a
    variant a method lacks is that measure null with the reason; an unknown one is a 422."""
    from app.measures.transferability import transrate

    small = _arrays(20, 4, 8)
    x, y = small["images"], small["labels"]
    as_json = {k: v.tolist() for k, v in small.items()}
    buf = io.BytesIO()
    np.savez(buf, **small)
    with stack.client() as c:
        for variant in ("definition", "iimm_reference", "authors"):
            want = transrate(x.astype(np.float64), y, variant=variant)
            body = {**as_json, "measures": ["transrate", "logme", "iimm"], "variant": variant}
            got = c.post("/v1/measures", json=body)
            upload = c.post(
                "/v1/measures:upload",
                files={"file": ("e.npz", buf.getvalue())},
                data={"measures": "transrate,logme,iimm", "variant": variant},
            )
            for resp in (got, upload):
                assert resp.status_code == 200, resp.text
                doc = resp.json()
                assert doc["variant"] == variant
                assert doc["measures"]["transrate"] == pytest.approx(want, rel=1e-9)
                if variant == "iimm_reference":
                    assert doc["measures"]["logme"] is None
                    assert "logme has no iimm_reference variant" in doc["reasons"]["logme"]
        plain = c.post("/v1/measures", json={**as_json, "measures": ["transrate"]}).json()
        assert plain["variant"] == "definition"
        assert plain["measures"]["transrate"] == pytest.approx(transrate(x, y), rel=1e-9)
        assert_problem(c.post("/v1/measures", json={**as_json, "variant": "paper"}), 422,
                       "authors_icml")  # fmt: skip
        assert_problem(
            c.post("/v1/measures:upload", files={"file": ("e.npz", buf.getvalue())},
                   data={"variant": "paper"}),
            422, "definition, iimm_reference, authors, authors_icml",
        )  # fmt: skip


def _cli(stack: Stack, *args: str) -> str:
    import subprocess
    import sys

    from tests.service.stack import ROOT

    env = {**stack.env, "IIMM_URL": stack.url, "IIMM_API_KEY": stack.admin_key}
    out = subprocess.run(
        [sys.executable, "-m", "iimm_cli", *args], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_cli_roundtrip(stack: Stack, shapes_zip: Path) -> None:
    import json
    import subprocess
    import sys
    import zipfile

    from tests.service.stack import ROOT

    if stack.kind != "embedded":
        return
    folder = stack.data_dir / "cli-data"
    with zipfile.ZipFile(shapes_zip) as zf:
        zf.extractall(folder)
    # the module's project already holds this content: the CLI registers a copy when asked
    ds = json.loads(_cli(stack, "datasets", "upload", str(folder), "--name", _name("cli"),
                         "--allow-duplicate"))  # fmt: skip
    assert ds["status"] == "ready" and ds["splits"]["test"] == 12  # it waited for the ingest job
    model = json.loads(
        _cli(stack, "models", "add", "--name", _name("m"), "--arch", TINY, "--pretrained", "random")
    )
    ids = ["--model-id", model["id"], "--dataset-id", ds["id"]]
    embed = json.loads(_cli(stack, "jobs", "submit", "embed", *ids, "--wait"))
    assert embed["status"] == "succeeded"
    score = json.loads(_cli(stack, "jobs", "submit", "score", *ids))
    assert json.loads(_cli(stack, "jobs", "wait", score["id"]))["status"] == "succeeded"
    assert json.loads(_cli(stack, "jobs", "show", score["id"]))["id"] == score["id"]
    table = _cli(stack, "scores", "--model-id", model["id"], "--dataset-id", ds["id"])
    assert "iimm" in table and "intra_images" in table
    env = {**stack.env, "IIMM_URL": stack.url, "IIMM_API_KEY": "wrong"}
    bad = subprocess.run(
        [sys.executable, "-m", "iimm_cli", "jobs", "list"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "401" in bad.stderr
    # the same content again without --allow-duplicate: the ingest job's 409, as before
    env["IIMM_API_KEY"] = stack.admin_key
    again = subprocess.run(
        [sys.executable, "-m", "iimm_cli", "datasets", "upload", str(folder), "--name", "again"],
        env=env, cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert again.returncode == 2 and "409: " in again.stderr and "same content" in again.stderr
