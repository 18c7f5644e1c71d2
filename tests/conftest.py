"""Suite-wide test settings. Area fixtures live in the conftest.py of each test folder."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

# One thread per pytest process for torch and BLAS (they read OMP_NUM_THREADS when first
# imported): the suite runs two xdist workers on the 2-core CI machine, so a second thread
# only spins against the other worker; tiny models train and embed several times faster
# in CPU seconds with one (test_finetune_training's learning and resume tests: 31 -> 8 CPU-s).
# The service stacks' processes run with one thread too (tests/service/stack.py).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# No network at test time: make hub libraries fail fast instead of trying to download.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, str], None]]:
    """Set an `IIMM_*` variable for one test: `get_settings()` sees it, and forgets it after."""
    from app.config import get_settings

    def setenv(name: str, value: str) -> None:
        monkeypatch.setenv(name, value)
        get_settings.cache_clear()

    yield setenv
    monkeypatch.undo()
    get_settings.cache_clear()
