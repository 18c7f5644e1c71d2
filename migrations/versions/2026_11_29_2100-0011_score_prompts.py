"""scores record the prompts they rest on (the score job's `prompts` and their hash)

Existing rows get their job's prompts (`jobs.params.prompts`), `default` where there is none.

Revision ID: 0011_score_prompts
Revises: 0010_ingest_jobs
Create Date: 2026-11-29 21:00:00.000000
"""

import hashlib
import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_score_prompts"
down_revision: str | None = "0010_ingest_jobs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _hash(prompts: object) -> str:
    """`app.imagedata.prompts.prompts_hash` as of this revision."""
    if not prompts:
        return "default"
    return hashlib.sha256(json.dumps(prompts).encode()).hexdigest()[:32]


def upgrade() -> None:
    op.add_column("scores", sa.Column("prompts", sa.JSON(), nullable=True))
    op.add_column(
        "scores",
        sa.Column("prompts_hash", sa.String(length=64), nullable=False, server_default="default"),
    )
    scores = sa.table(
        "scores", sa.column("id", sa.String), sa.column("job_id", sa.String),
        sa.column("prompts", sa.JSON), sa.column("prompts_hash", sa.String),
    )  # fmt: skip
    jobs = sa.table("jobs", sa.column("id", sa.String), sa.column("params", sa.JSON))
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(scores.c.id, jobs.c.params).join(jobs, jobs.c.id == scores.c.job_id)
    ).all()
    for score_id, params in rows:
        prompts = params.get("prompts") if isinstance(params, dict) else None
        if prompts:
            bind.execute(
                scores.update()
                .where(scores.c.id == score_id)
                .values(prompts=prompts, prompts_hash=_hash(prompts))
            )


def downgrade() -> None:
    with op.batch_alter_table("scores") as batch:
        batch.drop_column("prompts_hash")
        batch.drop_column("prompts")
