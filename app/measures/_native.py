"""The optional C kernel of the two O(n·d) passes, with the NumPy path as fallback.

``app/measures/_kernel.c`` (built by ``pip install``; optional, see ``setup.py``) reads each
image row once and does all of its work in float64 while the row sits in the L1 cache:

- :func:`class_sums`: q_i = ‖x_i‖² and S_{y_i} += x_i/‖x_i‖ (the ModalityStats pass);
- :func:`project`: q_i and x_i·v_c for a few vectors v_c (the cluster pass).

Both give the NumPy path's values up to the order of float64 summation. Rows whose squared
norm is zero or not finite are reported back, and the callers send them through the NumPy
path, which raises its usual error or rescues an over/underflowing float64 row. The kernel
runs when it is built and the setting ``IIMM_MEASURES_KERNEL`` is not ``numpy``;
:func:`kernel_info` tells which path runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np

from app.config import get_settings

try:  # built by `pip install` when a C compiler is present
    from app.measures import _kernel
except ImportError:  # pragma: no cover - depends on the installation
    _kernel = None

#: Rows per kernel call: large, since the kernel allocates nothing per row and a call's
#: overhead is a few microseconds; the per-row outputs of a block are 2 x 512 KiB.
KERNEL_BLOCK_ROWS = 65_536

_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
_forced: bool | None = None


def available() -> bool:
    """Whether the C kernel was built for this installation."""
    return _kernel is not None


def enabled() -> bool:
    """Whether the passes use the kernel now (built, and not switched off)."""
    if _forced is not None:
        return _forced and _kernel is not None
    return _kernel is not None and get_settings().measures_kernel != "numpy"


@contextlib.contextmanager
def forced(on: bool, *, simd: bool = True) -> Iterator[None]:
    """Use (``on``) or bypass the kernel inside the block; ``simd=False`` forces its
    portable loops (tests compare every path with the others)."""
    global _forced
    previous = _forced
    _forced = on
    if _kernel is not None:
        _kernel.set_simd(simd)
    try:
        yield
    finally:
        _forced = previous
        if _kernel is not None:
            _kernel.set_simd(True)


def kernel_info() -> str:
    """``"c/avx2+fma+f16c"``, ``"c/portable"`` or ``"numpy"``: the path the passes take."""
    return f"c/{_kernel.simd()}" if enabled() and _kernel is not None else "numpy"


def supports(images: np.ndarray) -> bool:
    """Whether the kernel can read ``images`` in place (float rows, each contiguous)."""
    if not enabled() or images.ndim != 2 or images.dtype not in _DTYPES:
        return False
    return images.shape[1] <= 1 or images.strides[1] == images.itemsize


def class_sums(
    block: np.ndarray, labels: np.ndarray, sums: np.ndarray, sq: np.ndarray
) -> np.ndarray:
    """Add x_i/‖x_i‖ of every row with a finite, non-zero norm to ``sums[labels[i]]``
    (float64 k x d, in place); ``sq`` receives ‖x_i‖². Returns the indices of the rows
    left out (zero or non-finite squared norm)."""
    assert _kernel is not None
    skipped = _kernel.class_sums(block, labels, sums, sq)
    return _bad_rows(sq) if skipped else np.empty(0, dtype=np.intp)


def project(block: np.ndarray, vecs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dots, sq, bad): dots[i, c] = x_i·vecs[c] of the raw rows, sq[i] = ‖x_i‖², and the
    indices of rows whose squared norm is zero or not finite."""
    assert _kernel is not None
    n = block.shape[0]
    dots = np.empty((n, vecs.shape[0]))
    sq = np.empty(n)
    _kernel.project(block, np.ascontiguousarray(vecs, dtype=np.float64), dots, sq)
    return dots, sq, _bad_rows(sq)


def _bad_rows(sq: np.ndarray) -> np.ndarray:
    return np.flatnonzero(~(np.isfinite(sq) & (sq > 0.0)))
