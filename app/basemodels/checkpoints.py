"""Checks of an uploaded model before anything loads it, without torch (the API process):
the architecture JSON must be an open_clip config, and the checkpoint either safetensors
(tensors only, by construction) or a `torch.save` zip whose pickle calls nothing but the
tensor and container constructors `torch.load(weights_only=True)` allows."""

from __future__ import annotations

import json
import pickletools
import zipfile
from pathlib import Path

from app.errors import InvalidError

# (module, name) a state dict's pickle may name: containers, tensor rebuilders, storages,
# dtypes. Anything else (os.system, builtins.eval, ...) could run code when unpickled.
SAFE_GLOBALS = {
    ("collections", "OrderedDict"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"),
    ("torch._tensor", "_rebuild_from_type_v2"),
    ("torch", "Size"),
    ("torch", "device"),
}
SAFE_DTYPES = {"float64", "float32", "float16", "bfloat16", "int64", "int32", "int16", "int8",
               "uint8", "bool", "complex64", "complex128"}  # fmt: skip
STRINGS = {"SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8", "SHORT_BINSTRING",
           "BINSTRING", "STRING"}  # fmt: skip
ARCH_KEYS = ("embed_dim", "vision_cfg", "text_cfg")


def check_architecture(path: Path) -> dict:
    """The open_clip architecture config at `path`; 422 naming what is wrong."""
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidError(f"the architecture file is not JSON: {exc}") from None
    missing = [k for k in ARCH_KEYS if not isinstance(cfg, dict) or k not in cfg]
    if missing:
        raise InvalidError(
            f"the architecture JSON lacks {missing}: give an open_clip model config "
            "(embed_dim, vision_cfg, text_cfg), like open_clip's model_configs/*.json"
        )
    return cfg


def _allowed(module: str, name: str) -> bool:
    torch_leaf = module in ("torch", "torch.storage") and (
        name.endswith("Storage") or name in SAFE_DTYPES
    )
    return (module, name) in SAFE_GLOBALS or torch_leaf


def pickle_globals(data: bytes) -> list[tuple[str, str]]:
    """Every (module, name) the pickle `data` imports (GLOBAL and STACK_GLOBAL opcodes)."""
    found: list[tuple[str, str]] = []
    strings: list[str] = []
    for op, arg, _ in pickletools.genops(data):
        if op.name in STRINGS:
            strings.append(str(arg))
        elif op.name == "GLOBAL":
            module, _, name = str(arg).partition(" ")
            found.append((module, name))
        elif op.name == "STACK_GLOBAL":
            if len(strings) < 2:
                found.append(("?", "?"))  # names built some other way: refuse
            else:
                found.append((strings[-2], strings[-1]))
    return found


def check_checkpoint(path: Path, filename: str) -> str:
    """The stored file name of a checkpoint that is safe to load (``weights.safetensors`` or
    ``weights.pt``); 422 saying why and what to upload instead."""
    with path.open("rb") as fh:
        head = fh.read(8)
    if zipfile.is_zipfile(path):
        _check_torch_zip(path)
        return "weights.pt"
    if filename.endswith(".safetensors") or len(head) == 8:
        _check_safetensors(path)
        return "weights.safetensors"
    raise InvalidError("the checkpoint is neither safetensors nor a torch.save zip file")


def _check_torch_zip(path: Path) -> None:
    with zipfile.ZipFile(path) as zf:
        pickles = [n for n in zf.namelist() if n.endswith("data.pkl")]
        if len(pickles) != 1:
            raise InvalidError("the checkpoint zip is not a torch.save file (no data.pkl)")
        data = zf.read(pickles[0])
    try:
        names = pickle_globals(data)
    except Exception as exc:  # pickletools raises ValueError and others on garbage
        raise InvalidError(f"the checkpoint's pickle cannot be read: {exc}") from None
    unsafe = sorted({f"{m}.{n}" for m, n in names if not _allowed(m, n)})
    if unsafe:
        raise InvalidError(
            f"the checkpoint's pickle would call {unsafe[:5]}: only tensors and containers "
            "are loaded (torch.load weights_only=True); upload a state_dict saved with "
            "torch.save(model.state_dict()) or, better, safetensors"
        )


def _check_safetensors(path: Path) -> None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            keys = list(f.keys())
    except Exception as exc:  # safetensors raises its own error types on a bad header
        raise InvalidError(f"the checkpoint is not a valid safetensors file: {exc}") from None
    if not keys:
        raise InvalidError("the safetensors checkpoint holds no tensors")
