"""Errors of the fine-tuning library, each one a request the caller can fix.

The service maps them to HTTP statuses: every class here is a bad request (``422``), never a
server fault, so a task can record the message on the job and stop without retrying.
"""

from __future__ import annotations


class FinetuneError(Exception):
    """Base class: a fine-tuning request that cannot be carried out as asked."""

    status: int = 422


class UnknownMethodError(FinetuneError, ValueError):
    """The method name is not in :data:`workers.ml.finetune.METHODS`."""


class UnsupportedArchitectureError(FinetuneError):
    """The method cannot be applied to this model (names the tower and what is missing)."""


class InvalidConfigError(FinetuneError, ValueError):
    """A configuration value is out of range or inconsistent."""


class GridTooLargeError(InvalidConfigError):
    """The hyperparameter grid has more points than the configured bound allows."""


class CheckpointMismatchError(FinetuneError):
    """A checkpoint in the store belongs to another run (method, config, task or prompts)."""
