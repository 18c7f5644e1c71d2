"""Bytes and files of the artifact store by kind (its top-level prefixes), for `/metrics`.

Measuring walks every file of the store (one listing per folder: on object stores, one
paginated LIST per prefix), which is too slow for each scrape of a large store. The
maintenance pass measures every ``IIMM_ARTIFACT_USAGE_INTERVAL_S`` (and after each orphan
sweep) and writes one `ArtifactUsage` row per kind; `/metrics` reads the rows (one small
query), so every API replica reports the same numbers and their time.
"""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.orm import Session

from app.artifacts.storage import Storage
from app.db import utcnow
from app.models import ArtifactUsage

#: The kinds the service writes: `datasets/<id>` uploads, `embeddings/<hash>`,
#: `finetune/<job id>` checkpoints, `measures/<upload id>` arrays of `POST /v1/measures:upload`
#: jobs, `models/<id>` uploaded models, `shards/<job id>` a sharded embedding's parts,
#: `uploads/<dataset id>` archives waiting for their ingest job. They are always reported (0
#: when absent); other top-level folders are reported under their own name, files at the
#: root as ``other``.
KINDS = ("datasets", "embeddings", "finetune", "measures", "models", "shards", "uploads")


def measure_usage(storage: Storage) -> dict[str, tuple[int, int]]:
    """``{kind: (bytes, files)}`` of every file under the storage root (sizes as the storage
    reports them: `st_size` on local disks, object sizes elsewhere)."""
    usage = dict.fromkeys(KINDS, (0, 0))
    root = storage.root.rstrip("/")
    if not storage.fs.exists(root):
        return usage
    for path, info in storage.fs.find(root, detail=True).items():
        if info.get("type") != "file":
            continue
        rel = str(path)[len(root) :].lstrip("/") if str(path).startswith(root) else str(path)
        kind = rel.split("/", 1)[0] if "/" in rel else "other"
        size, files = usage.get(kind, (0, 0))
        usage[kind] = (size + int(info.get("size") or 0), files + 1)
    return usage


def record_usage(session: Session, usage: dict[str, tuple[int, int]]) -> None:
    """Replace the stored usage rows with `usage` (one transaction: readers see old or new)."""
    now = utcnow()
    session.execute(delete(ArtifactUsage).execution_options(synchronize_session=False))
    session.add_all(
        ArtifactUsage(kind=kind, bytes=size, files=files, measured_at=now)
        for kind, (size, files) in sorted(usage.items())
    )
