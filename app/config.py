"""Settings of the service, read from `IIMM_*` environment variables (pydantic-settings).

Two deployments share this code: ``embedded`` (default; SQLite, local artifacts, a worker
that claims jobs straight from the database) and ``production`` (Postgres, Redis, fsspec
storage). Production settings are checked at start-up and refuse unsafe defaults.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MiB = 1024 * 1024

#: What each production URL looks like, for the messages that ask for one.
URL_EXAMPLES = {
    "database_url": "postgresql+psycopg://user@host/db",
    "broker_url": "redis://host:6379/0",
    "storage_url": "s3://bucket/prefix, or a path on a shared file system",
}


class Settings(BaseSettings):
    """Every setting of the service; each is an environment variable `IIMM_<NAME>`."""

    model_config = SettingsConfigDict(env_prefix="IIMM_", extra="ignore")

    mode: Literal["embedded", "production"] = "embedded"
    data_dir: Path = Path("./var")
    database_url: str | None = None
    broker_url: str | None = None
    broker_key_prefix: str = ""
    storage_url: str | None = None
    bootstrap_api_key: SecretStr | None = None
    # Seconds an API process may keep using a looked-up key: the bound on how long a revoked
    # key keeps working there (0: look the key up on every request).
    auth_cache_s: float = Field(default=5.0, ge=0)
    log_level: str = "INFO"

    # Dataset references: file:// paths must lie under one of these roots; s3:// and
    # https:// hosts must be listed.
    allowed_roots: list[str] = Field(default_factory=list)
    allowed_hosts: list[str] = Field(default_factory=list)

    # Bounds on request bodies and archives.
    max_upload_bytes: int = 512 * MiB
    max_json_bytes: int = 16 * MiB
    max_archive_entries: int = 200_000
    max_uncompressed_bytes: int = 4096 * MiB
    max_compression_ratio: float = 200.0
    max_image_pixels: int = 64_000_000
    measures_sync_max_values: int = 4_000_000

    # Jobs: task hard limit < broker visibility timeout < maximum job run time.
    lease_s: float = 60.0
    max_attempts: int = 3
    task_hard_limit_s: int = 6 * 3600
    broker_visibility_timeout_s: int = 7 * 3600
    job_max_runtime_s: int = 8 * 3600
    relay_interval_s: float = 1.0
    reaper_interval_s: float = 5.0
    requeue_after_s: float = 600.0
    worker_poll_s: float = 0.5
    # A running job's progress is written (and its cancel flag read) this often, at most.
    progress_interval_s: float = Field(default=1.0, gt=0, le=2.0)
    run_maintenance_in_api: bool = True
    # Artifacts no row points to (left by a crash between a delete's commit and its file
    # removal) and untouched for `orphan_min_age_s` are removed every `orphan_sweep_interval_s`.
    orphan_sweep_interval_s: float = Field(default=3600.0, gt=0)
    orphan_min_age_s: float = Field(default=3600.0, ge=0)
    # What a finished job leaves that nothing live points to (a `measures` job's uploaded
    # arrays) is kept this long after the job finished, then removed by the same pass; so are
    # upload working folders (untouched for `orphan_min_age_s`) of a process killed mid-request.
    job_files_retention_s: float = Field(default=86400.0, ge=0)
    # The artifact store's bytes and files by kind (`/metrics`) are measured this often (a
    # walk of every file: not done per scrape), and after each sweep.
    artifact_usage_interval_s: float = Field(default=300.0, gt=0)
    # `/metrics` gives `iimm_jobs_running{worker}` a sample (0 when idle) for every worker
    # that started or finished a job this recently, so an idle worker reads 0, not "no data".
    metrics_worker_window_s: float = Field(default=900.0, ge=0)
    # Published outbox rows are kept this long (for inspection), then purged by the same pass.
    outbox_retention_s: float = Field(default=7 * 86400.0, ge=0)
    # A worker's local copies of a remote artifact store (`<data dir>/cache/iimm-cache`,
    # `app.artifacts.cache`): at most this many bytes (0: unbounded; least recently used go
    # first, never one a job on the machine is reading), none unused for longer than the
    # retention (0: kept), and copies whose artifact the store no longer has (a delete, the
    # orphan sweep) removed by a check of the store at worker start, then every interval.
    artifact_cache_max_bytes: int = Field(default=64 * 1024 * MiB, ge=0)
    artifact_cache_retention_s: float = Field(default=7 * 86400.0, ge=0)
    artifact_cache_check_interval_s: float = Field(default=600.0, gt=0)
    # On SIGTERM/SIGINT a worker cancels its job and gives it back to the queue; after this
    # many seconds it gives the job back and exits even if the job has not stopped.
    worker_stop_grace_s: float = Field(default=6.0, ge=0)

    # Webhooks: targets are http(s) URLs; with hosts listed here, only those hosts.
    webhook_allowed_hosts: list[str] = Field(default_factory=list)
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    webhook_max_attempts: int = Field(default=10, ge=1)
    webhook_retry_base_s: float = Field(default=5.0, gt=0)  # then doubling, at most 1 h
    webhook_interval_s: float = Field(default=1.0, gt=0)

    # Predictors: a task whose zero-shot error 1 − acc_zs is below this is flagged in the
    # matrix and left out of gain predictors (G divides by that error, so a few test images
    # swing it by ±1).
    min_zero_shot_error: float = Field(default=0.05, ge=0, lt=1)

    # Torch intra-op threads of fine-tuning and evaluation jobs on CPU; 0 = torch's default
    # (one per core). On the shared 2-core CI kind one thread ran a fine-tuning step 10x
    # faster than two (benchmarks/threads.py).
    finetune_threads: int = Field(default=1, ge=0)

    # Worker-side embedding.
    device: str = "auto"
    embed_batch_size: int = Field(default=64, ge=1)
    # An evaluate job on datasets of more images than this in all fans out as child jobs,
    # each a group of datasets of about this many images (small ones share a model load).
    evaluate_group_images: int = Field(default=20000, ge=1)
    # An embed job on a split of more images than this (0: never) fans out as `embed_shard`
    # child jobs of about `embed_shard_size` images each, merged into the one embedding.
    # Read by the worker that first runs the embed job (with its embed_batch_size), never by
    # the API: set them in the workers' environment.
    embed_shard_threshold: int = Field(default=100_000, ge=0)
    embed_shard_size: int = Field(default=50_000, ge=1)
    # DataLoader workers; None (unset) = as many as the device wants where the worker process
    # may start processes (embedded worker, Celery --pool=solo), 0 in Celery prefork children.
    embed_num_workers: int | None = Field(default=None, ge=0)
    # A worker keeps at most this many loaded models, and at most this many bytes of their
    # parameters and buffers (the least recently used go first; GPU memory is released).
    model_cache_max_models: int = Field(default=4, ge=1)
    model_cache_max_bytes: int = Field(default=8 * 1024 * MiB, ge=0)

    # Escape hatches of the numerical paths (same results, another implementation):
    # ``numpy`` bypasses the measures' C kernel; ``interpolate`` resizes on the device with
    # PyTorch's resampling kernel instead of the matrix products.
    measures_kernel: Literal["auto", "numpy"] = "auto"
    device_resize: Literal["matrix", "interpolate"] = "matrix"

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if not self.task_hard_limit_s < self.broker_visibility_timeout_s < self.job_max_runtime_s:
            raise ValueError(
                "need IIMM_TASK_HARD_LIMIT_S < IIMM_BROKER_VISIBILITY_TIMEOUT_S"
                " < IIMM_JOB_MAX_RUNTIME_S"
            )
        if self.mode == "production":
            missing = [
                n for n in ("database_url", "broker_url", "storage_url") if not getattr(self, n)
            ]
            if missing:
                names = ", ".join(f"IIMM_{n.upper()} ({URL_EXAMPLES[n]})" for n in missing)
                raise ValueError(f"production mode needs {names}")
            if self.database_url and self.database_url.startswith("sqlite"):
                raise ValueError("production mode needs a Postgres IIMM_DATABASE_URL")
        key = self.bootstrap_api_key
        if key is not None and len(key.get_secret_value()) < 24:
            raise ValueError("IIMM_BOOTSTRAP_API_KEY must be at least 24 characters")
        return self

    @property
    def db_url(self) -> str:
        """The SQLAlchemy URL; embedded default is SQLite in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'iimm.db').resolve()}"

    @property
    def artifacts_url(self) -> str:
        """The fsspec URL (or local path) under which artifacts are stored."""
        return self.storage_url or str((self.data_dir / "artifacts").resolve())

    @property
    def uses_broker(self) -> bool:
        """True when jobs travel through Celery; False when workers poll the database."""
        return bool(self.broker_url)

    @property
    def admin_key_path(self) -> Path:
        """Where embedded mode writes the generated admin key."""
        return self.data_dir / "admin.key"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (cached; tests clear the cache after changing env).

    Raises pydantic's `ValidationError` when a variable is invalid; a process's entry point
    calls `settings_or_exit` instead, which says so in one line."""
    return Settings()


def describe_invalid(exc: ValidationError) -> str:
    """One line naming each invalid or missing `IIMM_*` variable and why (no traceback)."""
    parts = []
    for error in exc.errors():
        msg = str(error.get("msg", "")).removeprefix("Value error, ")
        loc = [str(p) for p in error.get("loc", ()) if isinstance(p, str)]
        parts.append(f"IIMM_{loc[0].upper()}: {msg}" if loc else msg)
    return "; ".join(parts)


def settings_or_exit(process: str, *, production: bool = False) -> Settings:
    """The process-wide settings, or `SystemExit` (status 1) with one line on stderr saying
    what to set in `process`'s environment (e.g. ``"the worker"``), instead of a traceback.

    With `production`, the process refuses to run outside production mode or without a
    broker: a Celery worker without `IIMM_BROKER_URL` would wait on Celery's default
    `amqp://guest@localhost:5672` for messages that never come."""
    try:
        settings = get_settings()
    except ValidationError as exc:
        line = describe_invalid(exc)
        them = "them" if len(exc.errors()) > 1 or ", IIMM_" in line else "it"
        raise SystemExit(f"iimm: {line}; set {them} in {process}'s environment") from None
    if production and settings.mode != "production":
        needs = ", ".join(f"IIMM_{n.upper()} ({u})" for n, u in URL_EXAMPLES.items())
        raise SystemExit(
            f"iimm: {process} runs only in production mode: it needs IIMM_MODE=production"
            f" and {needs}; set them in {process}'s environment"
        )
    return settings
