"""What the API can tell about a base model's towers without torch: enough to reject the
block-wise methods (BitFit, attention, LoRA) on towers that have no transformer blocks."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

BLOCK_METHODS = ("bitfit", "attention", "lora")


def _config(arch: str) -> dict[str, Any] | None:
    if not arch.endswith(".json"):
        return None
    try:
        data = json.loads(Path(arch).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def tower_problem(arch: str) -> str | None:
    """Why the model's towers have no open_clip/timm transformer blocks, if known."""
    config = _config(arch)
    if config is None:
        name = Path(arch).name
        return "its image tower is a ResNet" if re.match(r"RN\d", name) else None
    vision, text = config.get("vision_cfg") or {}, config.get("text_cfg") or {}
    if isinstance(vision.get("layers"), list | tuple):
        return "its image tower is a ResNet"
    if text.get("hf_model_name"):
        return f"its text tower is the Hugging Face model {text['hf_model_name']!r}"
    return None


def unsupported_reason(arch: str, method: str) -> str | None:
    """A message when `method` cannot be applied to architecture `arch` (None: supported or
    unknown here; the worker then decides and fails the job with the library's message)."""
    if method not in BLOCK_METHODS:
        return None
    problem = tower_problem(arch)
    if problem is None:
        return None
    return (
        f"method {method!r} tunes transformer blocks of both towers, but {problem}; "
        "use full, adapter or probe"
    )
