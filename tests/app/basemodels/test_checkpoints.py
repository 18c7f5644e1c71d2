"""Uploaded checkpoints are checked without loading them: tensors-only pickles and
safetensors pass; a pickle that would call anything else is refused (and never run)."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from app.basemodels.checkpoints import check_architecture, check_checkpoint, pickle_globals
from app.errors import InvalidError

TINY = Path(__file__).resolve().parents[3] / "workers" / "ml" / "configs" / "tiny-clip.json"


class Evil:
    """Unpickling this runs `os.system` (here: never unpickled, only checked)."""

    def __reduce__(self) -> tuple:
        return (os.system, ("touch /tmp/iimm-pwned",))


def _state() -> dict[str, torch.Tensor]:
    return {"w": torch.randn(3, 4), "b": torch.zeros(4, dtype=torch.float16),
            "n": torch.tensor([1, 2], dtype=torch.int64)}  # fmt: skip


def test_a_state_dict_and_safetensors_pass(tmp_path: Path) -> None:
    pt = tmp_path / "ok.pt"
    torch.save(_state(), pt)
    assert check_checkpoint(pt, "ok.pt") == "weights.pt"
    st = tmp_path / "ok.safetensors"
    save_file(_state(), str(st))
    assert check_checkpoint(st, "ok.safetensors") == "weights.safetensors"
    param = tmp_path / "param.pt"
    torch.save({"p": torch.nn.Parameter(torch.ones(2))}, param)  # a module's parameters
    assert check_checkpoint(param, "param.pt") == "weights.pt"


def test_a_pickle_that_would_run_code_is_refused(tmp_path: Path) -> None:
    evil = tmp_path / "evil.pt"
    torch.save({"w": torch.ones(1), "x": Evil()}, evil)
    with zipfile.ZipFile(evil) as zf:
        (data,) = [zf.read(n) for n in zf.namelist() if n.endswith("data.pkl")]
    assert (os.system.__module__, "system") in pickle_globals(data)
    with pytest.raises(InvalidError, match=r"would call \['posix.system'\].*safetensors"):
        check_checkpoint(evil, "evil.pt")
    assert not Path("/tmp/iimm-pwned").exists()


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"\x80\x04K\x01."])
def test_garbage_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x.bin"
    path.write_bytes(content)
    with pytest.raises(InvalidError):
        check_checkpoint(path, "x.bin")


def test_architecture_must_be_an_open_clip_config(tmp_path: Path) -> None:
    assert check_architecture(TINY)["embed_dim"] == 32
    bad = tmp_path / "bad.json"
    bad.write_text('{"embed_dim": 8}')
    with pytest.raises(InvalidError, match="vision_cfg"):
        check_architecture(bad)
    bad.write_text("{nope")
    with pytest.raises(InvalidError, match="not JSON"):
        check_architecture(bad)
