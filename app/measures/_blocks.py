"""Streaming over row blocks: one float64 conversion and one row-norm computation per block.

Every pass of the library goes through :func:`iter_blocks`, so a float16 memory map is read
block by block into one reused float64 buffer (no allocation per block, no copy of the
caller's array, which is never written to).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from app.measures._validate import check_rows

#: Bytes of one float64 block: 4 MiB (1024 rows at d = 512) stays in the last-level cache, so
#: the per-block operations after the float64 conversion do not go back to main memory, and
#: is large enough to amortise the per-block numpy call overhead (measured, see benchmarks/).
BLOCK_BYTES = 4 * 2**20


def default_block_rows(dim: int) -> int:
    """Rows per block for embeddings of dimension ``dim`` (at least 64)."""
    return max(64, BLOCK_BYTES // (8 * max(dim, 1)))


@dataclass(frozen=True, slots=True)
class Block:
    """One block of raw rows (float64, a view of a reused buffer) and its row norms."""

    start: int
    raw: np.ndarray
    sq_norms: np.ndarray  # ||raw_i||^2
    inv_norms: np.ndarray  # 1 / ||raw_i||, so that x_i = raw_i * inv_norms[i]


def row_sq_norms(block: np.ndarray) -> np.ndarray:
    """Squared L2 norms of the rows of a float64 block (the library's own copy).

    A finite, non-zero row whose squared norm over- or underflows is divided in place by its
    largest magnitude first; that leaves its direction, all the measures use, unchanged.
    """
    sq = np.einsum("ij,ij->i", block, block)
    odd = (sq == 0.0) | ~np.isfinite(sq)
    for i in np.flatnonzero(odd):
        row = block[i]
        scale = np.abs(row).max()
        if np.isfinite(row).all() and scale > 0.0:  # else NaN/inf/zero: check_rows reports it
            row /= scale
            sq[i] = float(row @ row)
    return sq


def iter_blocks(
    images: np.ndarray, block_rows: int | None = None, *, name: str = "images", offset: int = 0
) -> Iterator[Block]:
    """Yield validated float64 blocks of ``images`` with their norms (rows are not modified).

    ``offset`` is added to row indices in error messages (for blocks of a larger array).
    """
    n, d = images.shape
    rows = block_rows or default_block_rows(d)
    buf = np.empty((min(rows, n), d), dtype=np.float64)
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        raw = buf[: stop - start]
        np.copyto(raw, images[start:stop], casting="unsafe")
        sq = row_sq_norms(raw)
        check_rows(name, raw, sq, offset + start)
        yield Block(start, raw, sq, 1.0 / np.sqrt(sq))


def rescued_rows(
    block: np.ndarray, rows: np.ndarray, *, name: str = "images", offset: int = 0
) -> Block:
    """The rows ``block[rows]`` as the NumPy path sees them: float64, rescued from norm
    over/underflow, validated (errors name row ``offset + rows[j]``). For the few rows the
    C kernel leaves out; ``start`` of the result is meaningless."""
    raw = np.array(block[rows], dtype=np.float64)
    sq = row_sq_norms(raw)
    check_rows(name, raw, sq, offset, index=rows)
    return Block(0, raw, sq, 1.0 / np.sqrt(sq))


def normalised(a: np.ndarray, name: str) -> np.ndarray:
    """Validated float64 copy of a small matrix (e.g. the k x d texts) with unit rows."""
    out = np.array(a, dtype=np.float64)
    sq = row_sq_norms(out)
    check_rows(name, out, sq, 0)
    out /= np.sqrt(sq)[:, None]
    return out
