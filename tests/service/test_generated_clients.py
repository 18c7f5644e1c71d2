"""Clients generated from the service's own document work untouched.

Python: openapi-python-client (a dev dependency) generates a package that runs the README's
workflow against a live embedded stack; errors parse into the typed `Problem`. TypeScript:
openapi-typescript (from the npm registry, cached under `.cache/contract/`, which git
ignores) generates types that `tsc --strict` checks together with a small program using
openapi-fetch. Without npm or the registry the TypeScript test is skipped, saying why.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from app.main import create_app
from tests.service.conftest import WORKFLOW_TASKS, SharedStacks
from tests.service.stack import (
    FINAL,
    ROOT,
    TINY,
    Stack,
    free_port,
    until,
)
from tests.service.test_webhooks import Receiver

CACHE = ROOT / ".cache" / "contract"
NPM_PACKAGES = ("openapi-typescript@7.13.0", "openapi-fetch@0.17.0", "typescript@5.9.3")
HYPER = {"epochs": 2, "batch_size": 8, "lr": 0.02, "seed": 0}
TASKS = WORKFLOW_TASKS


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("contract") / "openapi.json"
    path.write_text(json.dumps(create_app().openapi()))
    return path


@pytest.fixture(scope="module")
def client_pkg(document: Path) -> Iterator[ModuleType]:
    """The generated Python package `iimm_client`, imported from a temporary folder."""
    pytest.importorskip("openapi_python_client", reason="install the dev extra: pip install .[dev]")
    out = document.parent / "python"
    config = document.parent / "generator.yaml"
    # no formatter run: the code is used as generated; SVG figures read as text (the
    # generator's documented override for a media type it does not know)
    config.write_text("post_hooks: []\ncontent_type_overrides:\n  image/svg+xml: text/plain\n")
    cmd = [sys.executable, "-m", "openapi_python_client", "generate", "--path", str(document),
           "--meta", "none", "--output-path", str(out / "iimm_client"), "--config", str(config),
           "--fail-on-warning"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module("iimm_client")
    finally:
        sys.path.remove(str(out))
        for name in [m for m in sys.modules if m.split(".")[0] == "iimm_client"]:
            del sys.modules[name]


@pytest.fixture(scope="module")
def live(shared_stacks: SharedStacks) -> Stack:
    """This process's shared embedded stack: webhooks may go to the test's receiver on
    127.0.0.1 and the API's delivery thread polls often (`WEBHOOK_ENV`)."""
    return shared_stacks.get("embedded")


@pytest.fixture(scope="module")
def token(live: Stack) -> str:
    """A key of a project of this module's own (the stack is shared with other modules)."""
    return live.new_key(f"generated-clients-{uuid.uuid4().hex[:8]}")


def _api(name: str) -> Any:
    return importlib.import_module(f"iimm_client.api.{name}")


def _wait(client: Any, job: Any, timeout: float = 600.0) -> Any:
    get_job = _api("jobs.get_job")
    deadline = time.monotonic() + timeout
    while job.status.value not in FINAL and time.monotonic() < deadline:
        time.sleep(0.3)
        job = get_job.sync(job.id, client=client)
    assert job.status.value == "succeeded", (job.status, job.error)
    return job


def _run(client: Any, bodies: list[Any]) -> list[Any]:
    create_job = _api("jobs.create_job")
    return [_wait(client, job) for job in [create_job.sync(client=client, body=b) for b in bodies]]


def _register_webhook(client: Any) -> tuple[Any, Receiver]:
    """A `job.succeeded` endpoint on a local receiver that verifies the Standard Webhooks
    signature with the secret the create call returned."""
    from iimm_client.models import EventType, WebhookCreate

    port = free_port()
    body = WebhookCreate(
        url=f"http://127.0.0.1:{port}/hook", event_types=[EventType("job.succeeded")]
    )
    hook = _api("webhooks.create_webhook").sync(client=client, body=body)
    assert hook.secret.startswith("whsec_")
    return hook, Receiver(port, hook.secret)


def _check_delivered(client: Any, hook: Any, receiver: Receiver, job_id: str) -> None:
    """The job's signed `job.succeeded` arrived, and the deliveries list shows it delivered."""
    from iimm_client.models import DeliveryStatus

    def arrived() -> list[tuple[dict[str, str], dict[str, Any]]]:
        return [(h, e) for h, e in receiver.received if e["data"]["id"] == job_id]

    arrivals = until("the signed job.succeeded delivery", arrived, poll=0.2)
    assert all(e["type"] == "job.succeeded" and e["data"]["status"] == "succeeded"
               for _, e in arrivals)  # fmt: skip
    assert receiver.rejected == 0
    deliveries = _api("webhooks.list_webhook_deliveries")

    def recorded() -> list[Any]:
        page = deliveries.sync(hook.id, client=client, status=DeliveryStatus("succeeded"))
        return [d for d in page.items if d.job_id == job_id]

    [row] = until("the delivery recorded as succeeded", recorded, poll=0.2)
    # at least once: a retried delivery keeps its id
    assert {h["webhook-id"] for h, _ in arrivals} == {row.id}
    assert row.event_type.value == "job.succeeded"
    assert row.last_status_code == 204 and row.delivered_at is not None


def test_python_client_runs_the_workflow(
    client_pkg: ModuleType, live: Stack, token: str, task_zips: list[Path]
) -> None:
    """The README's workflow through the generated client, untouched: upload, register,
    embed, score, measures, assess, fine-tune, matrix (JSON and CSV), predictor, prediction,
    webhooks (a signed delivery to a local receiver, listed as delivered)."""
    from iimm_client import AuthenticatedClient

    client = AuthenticatedClient(base_url=live.url, token=token)
    client = client.with_timeout(__import__("httpx").Timeout(120.0))
    hook, receiver = _register_webhook(client)
    try:
        _workflow(client, task_zips, hook, receiver)
    finally:
        receiver.close()


def _workflow(client: Any, task_zips: list[Path], hook: Any, receiver: Receiver) -> None:
    from iimm_client.models import (
        AssessParams,
        AssessResult,
        EmbedParams,
        EmbedResult,
        FinetuneParams,
        FinetuneParamsMethod,
        FinetuneResult,
        Hyperparameters,
        MeasuresRequest,
        ModelCreate,
        PredictionCreate,
        PredictorCreate,
        PredictorCreateMethod,
        ScoreParams,
        ScoreResult,
        UploadDatasetBody,
    )
    from iimm_client.types import File

    datasets = []
    for name, archive in zip(TASKS, task_zips, strict=True):
        with archive.open("rb") as fh:
            body = UploadDatasetBody(name=name, file=File(payload=fh, file_name=archive.name))
            datasets.append(_api("datasets.upload_dataset").sync(client=client, body=body))
    assert [d.name for d in datasets] == list(TASKS)
    # 202: each `validating`, with the ingest job that checks and decodes it
    assert all(d.status.value == "validating" for d in datasets)
    ingests = [_wait(client, _api("jobs.get_job").sync(d.job_id, client=client)) for d in datasets]
    assert [job.result.dataset_id for job in ingests] == [d.id for d in datasets]
    ids = [d.id for d in datasets]
    train, held_out = ids[:3], ids[3]
    model = _api("models.create_model").sync(
        client=client, body=ModelCreate(name="tiny", arch=TINY, pretrained="random")
    )
    assert model.id.startswith("mdl_")

    refs = {"model_id": model.id, "dataset_id": ids[0]}
    (embed,) = _run(client, [EmbedParams(**refs)])
    assert embed.type_.value == "embed" and embed.progress.fraction == 1.0
    assert isinstance(embed.result, EmbedResult) and embed.result.n == 12  # typed per job type
    assert (embed.result.model_name, embed.result.dataset_name) == ("tiny", TASKS[0])
    assert embed.created_at.tzinfo is not None and embed.created_at.utcoffset().total_seconds() == 0
    assert isinstance(embed.params, EmbedParams) and embed.params.split == "test"
    _check_delivered(client, hook, receiver, embed.id)
    (score,) = _run(client, [ScoreParams(**refs)])
    assert isinstance(score.result, ScoreResult) and score.result.n == 12
    scores = _api("scores.list_scores").sync(client=client, measure="iimm", **refs)
    assert [s.measure for s in scores.items] == ["iimm"]
    assert scores.items[0].value == score.result.measures.additional_properties["iimm"]

    request = MeasuresRequest(
        images=[[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]],
        texts=[[1.0, 0.1], [0.1, 1.0]],
        labels=[0, 0, 1, 1],
    )
    measured = _api("measures.compute_measures").sync(client=client, body=request)
    assert measured.n == 4 and "iimm" in measured.measures.additional_properties

    first = _run(client, [AssessParams(model_id=model.id, dataset_id=d, bootstrap=50) for d in ids])
    assert all(isinstance(job.result, AssessResult) for job in first)
    hyper = Hyperparameters.from_dict(HYPER)
    tuned = _run(client, [
        FinetuneParams(model_id=model.id, dataset_id=d, method=FinetuneParamsMethod.FULL,
                       hyperparameters=hyper)
        for d in train
    ])  # fmt: skip
    assert all(isinstance(job.result, FinetuneResult) for job in tuned)
    assert [h["epoch"] for h in tuned[0].result.history] == [1, 2]
    assert tuned[0].result.model_name == "tiny" and tuned[0].result.dataset_name == TASKS[0]
    ftm_ids = [job.result.finetuned_model_id for job in tuned]
    record = _api("finetuned_models.get_finetuned_model").sync(ftm_ids[0], client=client)
    assert record.train_dataset_id == train[0]
    matrix = _api("matrices.get_matrix").sync(client=client, base_model_id=model.id)
    assert sorted(row.finetuned_model_id for row in matrix.rows) == sorted(ftm_ids)
    table = _api("matrices.get_matrix_csv").sync(client=client, base_model_id=model.id)
    header, *rows = table.splitlines()
    assert all(name in header for name in TASKS) and rows[0].startswith("zero-shot,")
    assert len(rows) == 1 + len(matrix.rows)
    heat_map = _api("matrices.get_matrix_svg").sync(client=client, base_model_id=model.id)
    assert heat_map.startswith("<svg") and all(name in heat_map for name in TASKS)

    predictor = _api("predictors.create_predictor").sync(
        client=client,
        body=PredictorCreate(base_model_id=model.id, method=PredictorCreateMethod.FULL),
    )
    assert sorted(predictor.datasets) == sorted(train) and predictor.n == 3
    prediction = _api("predictors.create_prediction").sync(
        predictor.id, client=client, body=PredictionCreate(dataset_id=held_out)
    )
    assert prediction.dataset_id == held_out and prediction.target.value == "gain"
    figure = _api("predictors.get_predictor_svg").sync(predictor.id, client=client)
    assert figure.startswith("<svg") and TASKS[0] in figure
    (again,) = _run(client, [AssessParams(model_id=model.id, dataset_id=held_out, bootstrap=50)])
    full = again.result.to_dict()["methods"]["full"]
    assert full["gain"]["prediction"]["value"] == prediction.prediction.value
    typed = again.result.methods.additional_properties["full"]  # AssessMethod
    assert typed.feature == "iimm" and typed.predicted_by.startswith("by=best")
    assert typed.stale is False and again.params.by.value == "best"
    assert full["ood_change"] is None and again.result.embeddings_reused is True


def test_python_client_parses_problems(client_pkg: ModuleType, live: Stack, token: str) -> None:
    """A 404 and a 422 arrive as the typed `Problem`, with `type`, `detail` and `errors`."""
    from iimm_client import AuthenticatedClient
    from iimm_client.models import Problem

    client = AuthenticatedClient(base_url=live.url, token=token)
    missing = _api("jobs.get_job").sync_detailed("job_nope", client=client)
    assert missing.status_code == 404 and isinstance(missing.parsed, Problem)
    assert missing.parsed.type_ == "/problems/not-found" and "job_nope" in missing.parsed.detail
    invalid = _api("jobs.list_jobs").sync_detailed(client=client, limit=0)
    assert invalid.status_code == 422 and isinstance(invalid.parsed, Problem)
    assert invalid.parsed.type_ == "/problems/validation"
    assert [e.loc for e in invalid.parsed.errors] == [["query", "limit"]]


USAGE_TS = """
import createClient from "openapi-fetch";
import type { components, paths } from "./schema";

type Problem = components["schemas"]["Problem"];
type JobRead = components["schemas"]["JobRead"];

const client = createClient<paths>({ baseUrl: "http://localhost:8000" });

export async function jobStatus(jobId: string): Promise<JobRead["status"] | Problem> {
  const { data, error } = await client.GET("/v1/jobs/{job_id}", {
    params: { path: { job_id: jobId } },
  });
  if (error) {
    const problem: Problem = error;
    return problem;
  }
  return data.status;
}

export async function heatMap(baseModelId: string): Promise<string | undefined> {
  // the SVG figure, read as text
  const { data } = await client.GET("/v1/matrices/svg", {
    params: { query: { base_model_id: baseModelId, method: "full" } },
    parseAs: "text",
  });
  return data;
}

export async function table(baseModelId: string): Promise<string | undefined> {
  const { data } = await client.GET("/v1/matrices/csv", {
    params: { query: { base_model_id: baseModelId } },
    parseAs: "text",
  });
  return data;
}

export async function embed(modelId: string, datasetId: string): Promise<string | undefined> {
  const { data } = await client.POST("/v1/jobs", {
    body: { type: "embed", model_id: modelId, dataset_id: datasetId, split: "test" },
  });
  return data?.id;
}
"""


def _npm_tools() -> Path:
    """`node_modules/.bin` with the pinned packages, installed once per set of versions."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed: the TypeScript client cannot be generated")
    key = hashlib.sha256(" ".join(NPM_PACKAGES).encode()).hexdigest()[:12]
    prefix = CACHE / f"npm-{key}"
    bin_dir = prefix / "node_modules" / ".bin"
    if not (bin_dir / "tsc").exists():
        prefix.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", *NPM_PACKAGES],
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            pytest.skip(f"npm registry unreachable: {done.stderr.strip()[-300:]}")
    return bin_dir


def test_typescript_client_type_checks(document: Path) -> None:
    bin_dir = _npm_tools()
    out = document.parent / "ts"
    out.mkdir(exist_ok=True)
    gen = subprocess.run(
        [str(bin_dir / "openapi-typescript"), str(document), "-o", str(out / "schema.d.ts")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert gen.returncode == 0, gen.stdout + gen.stderr
    (out / "usage.ts").write_text(USAGE_TS)
    # resolve openapi-fetch from the cache
    (out / "node_modules").symlink_to(bin_dir.parent, target_is_directory=True)
    check = subprocess.run(
        [str(bin_dir / "tsc"), "--noEmit", "--strict", "--target", "es2022", "--module",
         "esnext", "--moduleResolution", "bundler", "--lib", "es2022,dom", "--skipLibCheck",
         "false", str(out / "usage.ts"), str(out / "schema.d.ts")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
