"""Errors of the fine-tuning library, each one a request the caller can fix.

Every class here is an error of the request, never a fault of the machine, so a task
records the message on the job and stops without retrying. The library knows nothing of
HTTP: the service decides how such a failure is shown.
"""

from __future__ import annotations


class FinetuneError(Exception):
    """Base class: a fine-tuning request that cannot be carried out as asked."""


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
