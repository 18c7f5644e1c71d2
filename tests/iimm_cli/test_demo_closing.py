"""The demo's closing line names what happened to its data and commands that work."""

from __future__ import annotations

from pathlib import Path

from iimm_cli.demo import closing_line


def test_removed_data_points_to_a_demo_that_keeps_it() -> None:
    line = closing_line(None, Path("/tmp/iimm-demo-x/var"), ".venv/bin/iimm", port=8123)
    assert "removed" in line and "/tmp/iimm-demo-x/var" in line
    assert "`.venv/bin/iimm demo --data-dir ./demo-data --port 8123 --keep-serving`" in line
    assert "http://127.0.0.1:8123/dashboard" in line and "./demo-data/admin.key" in line
    assert "DIR" not in line and "iimm serve" not in line  # nothing to serve: it is gone


def test_kept_data_points_to_serving_it() -> None:
    line = closing_line("/data/d", Path("/data/d"), "/opt/venv/bin/iimm", port=8000)
    assert "kept in /data/d" in line and "removed" not in line
    assert "`/opt/venv/bin/iimm serve --data-dir /data/d --port 8000`" in line
    assert "http://127.0.0.1:8000/dashboard" in line and "/data/d/admin.key" in line
