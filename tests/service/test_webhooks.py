"""Webhooks over real HTTP: endpoints registered on a real stack, job events delivered by the
API's delivery thread to a real receiver on 127.0.0.1 that verifies the Standard Webhooks
signature, including a receiver that is down for a while (retried with backoff)."""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.service.conftest import SharedStacks
from tests.service.stack import Stack, free_port, until, wait_job
from tests.service.test_api import add_tiny, assert_problem, upload


class Receiver:
    """An HTTP server on 127.0.0.1 that accepts only correctly signed deliveries."""

    def __init__(self, port: int, secret: str) -> None:
        self.port, self.webhook = port, Webhook(secret)
        self.received: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.rejected = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    event = receiver.webhook.verify(body, headers)
                except WebhookVerificationError:
                    receiver.rejected += 1
                    self.send_response(400)
                else:
                    receiver.received.append((headers, event))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def stack(shared_stacks: SharedStacks) -> Stack:
    """This process's shared embedded stack: its webhooks may only go to 127.0.0.1 and are
    retried quickly (`WEBHOOK_ENV`); each test works in projects of its own."""
    return shared_stacks.get("embedded")


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _dataset(c: httpx.Client, shapes_zip: Path) -> str:
    """A ready dataset, uploaded before the test's hook exists (its ingest job's events are
    not the test's)."""
    return str(upload(c, shapes_zip).json()["id"])


def _embed(c: httpx.Client, dataset: str) -> dict[str, Any]:
    model = add_tiny(c)
    body = {"type": "embed", "model_id": model["id"], "dataset_id": dataset, "split": "test"}
    job = wait_job(c, c.post("/v1/jobs", json=body).json()["id"])
    assert job["status"] == "succeeded", job
    return job


def test_endpoints_crud_and_url_checks(stack: Stack) -> None:
    with stack.client(stack.new_key(_name("hooks"))) as c:
        assert_problem(c.post("/v1/webhooks", json={"url": "file:///etc/passwd"}), 422, "http")
        assert_problem(c.post("/v1/webhooks", json={"url": "ftp://127.0.0.1/x"}), 422, "http")
        assert_problem(
            c.post("/v1/webhooks", json={"url": "https://example.com/hook"}), 422, "127.0.0.1"
        )
        bad = c.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/x", "event_types": ["x"]})
        assert bad.status_code == 422
        resp = c.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/hook",
                                             "event_types": ["job.failed"]})  # fmt: skip
        assert resp.status_code == 201, resp.text
        hook = resp.json()
        assert hook["secret"].startswith("whsec_") and hook["event_types"] == ["job.failed"]
        assert resp.headers["location"] == f"/v1/webhooks/{hook['id']}"
        listed = c.get("/v1/webhooks").json()["items"]
        assert [h["id"] for h in listed] == [hook["id"]] and listed[0]["secret"] is None
        assert c.get(f"/v1/webhooks/{hook['id']}").json()["url"] == "http://127.0.0.1:9/hook"
        with stack.client(stack.new_key(_name("other"))) as other:
            assert_problem(other.get(f"/v1/webhooks/{hook['id']}"), 404)
            assert_problem(other.delete(f"/v1/webhooks/{hook['id']}"), 404)
        assert c.delete(f"/v1/webhooks/{hook['id']}").status_code == 204
        assert_problem(c.get(f"/v1/webhooks/{hook['id']}"), 404)
        assert_problem(c.get(f"/v1/webhooks/{hook['id']}/deliveries"), 404)


def test_job_events_arrive_signed(stack: Stack, shapes_zip: Path) -> None:
    port = free_port()
    with stack.client(stack.new_key(_name("events"))) as c:
        dataset = _dataset(c, shapes_zip)
        hook = c.post("/v1/webhooks", json={"url": f"http://127.0.0.1:{port}/hook"}).json()
        receiver = Receiver(port, hook["secret"])
        try:
            job = _embed(c, dataset)
            wanted = ["job.queued", "job.running", "job.succeeded"]

            def events() -> list[str]:
                return [e["type"] for _, e in receiver.received if e["data"]["id"] == job["id"]]

            until("three events", lambda: len(events()) >= 3)
            assert sorted(events()) == sorted(wanted) and receiver.rejected == 0
            done = next(e for _, e in receiver.received if e["type"] == "job.succeeded")
            assert done["data"] == {
                "id": job["id"],
                "type": "embed",
                "status": "succeeded",
                "error": None,
                "links": {"self": f"/v1/jobs/{job['id']}"},
            }
            url = f"/v1/webhooks/{hook['id']}/deliveries"

            def recorded() -> list[dict[str, Any]] | None:
                items = c.get(url, params={"status": "succeeded"}).json()["items"]
                return items if len(items) >= 3 else None

            rows = until("three recorded deliveries", recorded)
            ids = {h["webhook-id"] for h, _ in receiver.received}
            assert {d["id"] for d in rows} == ids and all(d["attempts"] == 1 for d in rows)
            # a tampered body fails verification with the same headers
            headers, event = receiver.received[0]
            tampered = json.dumps({**event, "type": "job.failed"}, separators=(",", ":"))
            with pytest.raises(WebhookVerificationError):
                Webhook(hook["secret"]).verify(tampered, headers)
        finally:
            receiver.close()


def test_a_receiver_down_for_a_while_gets_the_event_later(stack: Stack, shapes_zip: Path) -> None:
    port = free_port()  # nothing listens there yet: connections are refused
    with stack.client(stack.new_key(_name("down"))) as c:
        dataset = _dataset(c, shapes_zip)
        body = {"url": f"http://127.0.0.1:{port}/hook", "event_types": ["job.succeeded"]}
        hook = c.post("/v1/webhooks", json=body).json()
        job = _embed(c, dataset)
        url = f"/v1/webhooks/{hook['id']}/deliveries"

        def retried() -> dict[str, Any] | None:
            items = c.get(url).json()["items"]
            return items[0] if items and items[0]["attempts"] >= 2 else None

        failing = until("two failed attempts", retried)
        assert failing["status"] == "pending" and failing["job_id"] == job["id"]
        assert failing["last_error"] and failing["last_status_code"] is None
        receiver = Receiver(port, hook["secret"])
        try:

            def delivered() -> dict[str, Any] | None:
                items = c.get(url, params={"status": "succeeded"}).json()["items"]
                return items[0] if items else None

            row = until("the delivery after the receiver came up", delivered)
            assert row["id"] == failing["id"] and row["attempts"] > failing["attempts"]
            assert row["last_status_code"] == 204 and row["delivered_at"] is not None
            [(headers, event)] = receiver.received
            assert headers["webhook-id"] == row["id"]  # the same id on every retry
            assert event["type"] == "job.succeeded" and event["data"]["id"] == job["id"]
        finally:
            receiver.close()
