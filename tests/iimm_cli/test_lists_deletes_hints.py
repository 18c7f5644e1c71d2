"""`iimm datasets list` prints a table (`--json` the items), `iimm models delete` mirrors
`iimm datasets delete` (a 409 naming `--cascade`, which cancels the model's jobs), and
`iimm rankings` with nothing to rank prints no empty table but what to run, the API's
requests given as `iimm` commands. The CLI talks to the service in process (its HTTP client
is a TestClient of the app on a migrated SQLite database)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.config import Settings
from app.db import session_scope
from app.main import create_app
from app.models import Dataset, Job, Project
from app.predictors.predictions import assess_request
from iimm_cli import main
from iimm_cli.client import ApiClient
from iimm_cli.rankings import cli_reason
from tests.service.stack import TINY

KEY = "test-" + "c" * 40


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TestClient, Any]]:
    settings = Settings(data_dir=tmp_path, bootstrap_api_key=KEY, run_maintenance_in_api=False)
    app = create_app(settings)
    with TestClient(app, headers={"Authorization": f"Bearer {KEY}"}) as http:

        def from_args(cls: type[ApiClient], args: object) -> ApiClient:
            client = ApiClient("http://testserver", KEY)
            client.http.close()
            client.http = http
            return client

        monkeypatch.setattr(ApiClient, "from_args", classmethod(from_args))
        yield http, app


def _dataset(app: Any, id_: str, name: str, **kw: Any) -> None:
    with session_scope(app.state.sessionmaker) as session:
        project = session.scalar(select(Project.id))
        session.add(
            Dataset(id=id_, project_id=project, name=name, status="ready", format="folder",
                    source="upload", uri=f"datasets/{id_}", class_names=["a", "b", "c"],
                    splits={"train": 60, "test": 20}, fingerprint="fp", **kw)
        )  # fmt: skip


def _model(http: TestClient) -> dict[str, Any]:
    resp = http.post("/v1/models", json={"name": "tiny", "arch": TINY, "pretrained": "random"})
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def test_datasets_list_is_a_table(api: tuple[TestClient, Any], capsys: Any) -> None:
    http, app = api
    _dataset(app, "dst_1", "shapes")
    _dataset(app, "dst_2", "shapes-copy", duplicate_allowed=True)
    assert main(["datasets", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["id", "name", "status", "classes", "splits", "copy", "of"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:]}
    assert rows == {
        "dst_1": ["shapes", "ready", "3", "train=60", "test=20", "-"],
        "dst_2": ["shapes-copy", "ready", "3", "train=60", "test=20", "dst_1"],
    }
    assert main(["datasets", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(
        json.dumps(http.get("/v1/datasets").json()["items"])
    )


def test_models_delete_names_cascade_which_cancels_its_jobs(
    api: tuple[TestClient, Any], capsys: Any
) -> None:
    http, app = api
    model = _model(http)
    _dataset(app, "dst_1", "shapes")
    body = {"type": "embed", "model_id": model["id"], "dataset_id": "dst_1", "split": "train"}
    job = http.post("/v1/jobs", json=body).json()["id"]
    assert main(["models", "delete", model["id"]]) == 2
    err = capsys.readouterr().err
    assert "409: " in err and "(1 active job); delete with --cascade" in err, err
    assert http.get(f"/v1/models/{model['id']}").status_code == 200
    assert main(["models", "delete", model["id"], "--cascade"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == [f"deleted model {model['id']}; cancelled 1 active job ({job})"]
    assert http.get(f"/v1/models/{model['id']}").status_code == 404
    cancelled = http.get(f"/v1/jobs/{job}").json()
    assert cancelled["status"] == "cancelled"
    assert cancelled["error"] == f"cancelled: model 'tiny' ({model['id']}) deleted with cascade"
    # nothing depends on the dataset any more: the cascade says so
    assert main(["datasets", "delete", "dst_1", "--cascade"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "deleted dataset dst_1 (nothing depended on it)"
    ]
    assert main(["datasets", "delete", "dst_1", "--cascade"]) == 2
    assert "404: " in capsys.readouterr().err
    with session_scope(app.state.sessionmaker) as session:
        assert session.get(Job, job) is not None  # cancelled, kept


def test_rankings_without_predictors_say_what_to_run(
    api: tuple[TestClient, Any], capsys: Any
) -> None:
    http, app = api
    _dataset(app, "dst_1", "shapes")
    assert main(["rankings", "--dataset-id", "dst_1"]) == 0
    out = capsys.readouterr().out
    assert "nothing to rank" in out and "iimm models add" in out, out
    model = _model(http)
    assert main(["rankings", "--dataset-id", "dst_1"]) == 0
    out = capsys.readouterr().out
    assert "#  base model" not in out and "ood_change" not in out  # no empty table
    assert (
        f"not ranked: tiny: no predictor for this base model: fit one with `iimm predictors fit"
        f" --base-model-id {model['id']} --method METHOD` (after fine-tuning 3 tasks)"
    ) in out.splitlines(), out
    assert "POST /v1" not in out


def test_unranked_reasons_name_cli_commands() -> None:
    item = {"base_model_id": "mdl_1", "method": "lora"}
    scores = f"no zero-shot scores for this dataset: submit {assess_request('mdl_1', 'dst_1')}"
    assert cli_reason({**item, "reason": scores}) == (
        "no zero-shot scores for this dataset: submit `iimm assess --model-id mdl_1"
        " --dataset-id dst_1`"
    )
    fit = "no gain predictor on iimm: fit one with POST /v1/predictors (feature 'iimm') or ..."
    assert cli_reason({**item, "reason": fit}) == (
        "no gain predictor on iimm: fit one with `iimm predictors fit --base-model-id mdl_1"
        " --method lora --feature iimm` or ..."
    )
