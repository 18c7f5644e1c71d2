"""Benchmark of the O(n·d) measure family against the memory-bound floor.

For n in {1e4, 5e4, 1e5, 1e6} float16 image embeddings (d = 512) are written to a memory-mapped
``.npy`` file in a temporary directory; then, each the best of ``--repeats`` warm runs:

- ``floor``: one plain numpy pass summing the array in blocks of 65536 rows
  (``block.sum(axis=0, dtype=float64)``), the least any exact measure has to do;
- ``one pass``: ``compute_measures`` of the FAST_MEASURES without the cosine silhouette and
  Davies-Bouldin: validation and the single accumulating pass (ModalityStats);
- ``family``: ``compute_measures(X, T, y)`` with every FAST_MEASURES name (validation, the
  accumulating pass and the second pass of the cosine silhouette / Davies-Bouldin);
- ``pairwise`` (n <= 5e4): the reference's blocked O(n²) intra-images computation
  (float32 blocks of 4096 rows against all rows, mean over i < j) -- the pairs only;
- per-row time of the family relative to the smallest n (1.0 = linear scaling).

The passes run through the C kernel when it is built (``--kernel auto``); ``--kernel numpy``
forces the NumPy path and ``--kernel portable`` the kernel without its AVX2/F16C loops.

Repeats of the three timings are interleaved and the minimum is reported, so load from other
processes affects them alike. Usage: ``python benchmarks/measures.py`` (full) or
``python benchmarks/measures.py --quick`` (n in {5e3, 2e4}, seconds).
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.measures import FAST_MEASURES, compute_measures, kernel_info
from app.measures._native import forced

FLOOR_BLOCK = 65_536
SECOND_PASS = ("silhouette_cosine", "davies_bouldin")


def write_embeddings(path: Path, n: int, d: int, k: int, seed: int) -> None:
    """CLIP-like float16 embeddings (a shared direction plus noise, unit rows) as .npy."""
    rng = np.random.default_rng(seed)
    centre = rng.standard_normal(d)
    out = np.lib.format.open_memmap(path / "X.npy", mode="w+", dtype=np.float16, shape=(n, d))
    for start in range(0, n, 100_000):
        block = rng.standard_normal((min(100_000, n - start), d), dtype=np.float32) + 0.1 * centre
        out[start : start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    out.flush()
    del out
    np.save(path / "T.npy", rng.standard_normal((k, d)).astype(np.float16))
    np.save(path / "y.npy", rng.integers(0, k, n))


def floor_pass(X: np.ndarray) -> np.ndarray:
    """The memory-bound floor: sum the float16 array block by block in float64."""
    total = np.zeros(X.shape[1])
    for start in range(0, X.shape[0], FLOOR_BLOCK):
        total += X[start : start + FLOOR_BLOCK].sum(axis=0, dtype=np.float64)
    return total


def pairwise_reference(X: np.ndarray, block: int = 4096) -> float:
    """Blocked O(n²) mean over i < j of x_i·x_j, the way the reference code computes it."""
    Xn = np.asarray(X, dtype=np.float32)
    Xn = Xn / np.linalg.norm(Xn, axis=1, keepdims=True)
    n, total = Xn.shape[0], 0.0
    for start in range(0, n, block):
        sims = Xn[start : start + block] @ Xn.T
        cols = np.arange(n)[None, :]
        rows = np.arange(start, start + sims.shape[0])[:, None]
        total += float(sims[cols > rows].sum(dtype=np.float64))
    return total / (n * (n - 1) / 2)


def timed(fn: Callable[[], object]) -> float:
    """Wall time of one call."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure_size(path: Path, n: int, repeats: int, pairwise_max: int) -> dict:
    """Interleaved repeats (floor, one pass, family) so machine load hits all alike; minima."""
    X = np.load(path / "X.npy", mmap_mode="r")
    T, y = np.load(path / "T.npy"), np.load(path / "y.npy", mmap_mode="r")
    one_pass = [name for name in FAST_MEASURES if name not in SECOND_PASS]
    jobs = {
        "floor": lambda: floor_pass(X),
        "one_pass": lambda: compute_measures(X, T, y, one_pass),
        "family": lambda: compute_measures(X, T, y, FAST_MEASURES),
    }
    times: dict[str, list[float]] = {name: [] for name in jobs}
    for _ in range(repeats):
        for name, fn in jobs.items():
            times[name].append(timed(fn))
    row: dict = {"n": n} | {name: min(ts) for name, ts in times.items()}
    row["pairwise"] = timed(lambda: pairwise_reference(X)) if n <= pairwise_max else None
    return row


def run(sizes: list[int], d: int, k: int, repeats: int, pairwise_max: int) -> list[dict]:
    """Measure every size; return one row of figures per n."""
    rows = []
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            write_embeddings(Path(tmp), n, d, k, seed=n)
            rows.append(measure_size(Path(tmp), n, repeats, pairwise_max))
        print(f"n={n:>9,}: {rows[-1]}", file=sys.stderr)
    return rows


def table(rows: list[dict]) -> str:
    """Markdown table of the figures."""
    base = rows[0]["family"] / rows[0]["n"]
    lines = [
        "| n | floor (s) | one pass (s) | one pass / floor | family (s) | family / floor "
        "| pairwise O(n²) (s) | pairwise / family | family per-row time vs smallest n |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        pair = "—" if r["pairwise"] is None else f"{r['pairwise']:.2f}"
        ratio = "—" if r["pairwise"] is None else f"{r['pairwise'] / r['family']:.0f}×"
        lines.append(
            f"| {r['n']:,} | {r['floor']:.3f} | {r['one_pass']:.3f} | "
            f"{r['one_pass'] / r['floor']:.2f} | {r['family']:.3f} | "
            f"{r['family'] / r['floor']:.2f} | {pair} | {ratio} | "
            f"{r['family'] / r['n'] / base:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Parse options, run, print the markdown table and the machine."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, finishes in seconds")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sizes", help="comma-separated n to run instead of the defaults")
    parser.add_argument(
        "--kernel",
        choices=["auto", "numpy", "portable"],
        default="auto",
        help="the passes' path: the C kernel if built (auto), NumPy, or the kernel's portable C",
    )
    args = parser.parse_args(argv)
    if args.kernel == "auto":
        _run(args)
    else:
        with forced(args.kernel == "portable", simd=False):
            _run(args)


def _run(args: argparse.Namespace) -> None:
    sizes = [5_000, 20_000] if args.quick else [10_000, 50_000, 100_000, 1_000_000]
    if args.sizes:
        sizes = [int(float(v)) for v in args.sizes.split(",")]
    pairwise_max = 20_000 if args.quick else 50_000
    rows = run(sizes, args.dim, args.classes, args.repeats, pairwise_max)
    print(
        f"d = {args.dim}, k = {args.classes}, float16 memmap; passes: {kernel_info()}; "
        f"numpy {np.__version__}; {platform.machine()}, {platform.python_version()}\n"
    )
    print(table(rows))


if __name__ == "__main__":
    main()
