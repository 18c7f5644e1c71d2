"""Suite-wide test settings. Area fixtures live in the conftest.py of each test folder."""

from __future__ import annotations

import os

# Keep the 2-core CI machine responsive when several libraries start thread pools.
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# No network at test time: make hub libraries fail fast instead of trying to download.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
