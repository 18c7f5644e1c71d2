"""Benchmark: images/second of the whole embedding path against the bare forward pass.

The whole path is `workers.ml.embed.embed_dataset` on a generated PNG dataset: decode and
preprocess in DataLoader workers, forward, float16 write, zero-shot top-5 and the measures'
statistics. The baseline is `model.encode_image` alone on the same images, preprocessed
beforehand, in the same process, batch for batch (on the device already). Models are random
init: the tiny bundled architecture and ViT-B-32.

    python benchmarks/embed.py                 # CPU, both models
    python benchmarks/embed.py --quick         # a smoke run
    python benchmarks/embed.py --device cuda --dtype bf16 --n 8192 --batch-size 512
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
MODELS = {
    "tiny": str(REPO / "workers" / "ml" / "configs" / "tiny-clip.json"),
    "ViT-B-32": "ViT-B-32@random",
}


def bare_forward(loaded, dataset, split: str, batch_size: int, repeats: int) -> float:
    """Images/second of encode_image alone on preprocessed tensors already on the device.

    On CPU the best over intra-op thread counts (all cores, one fewer, one) is kept, so the
    baseline is the fastest bare forward pass this machine gives at the time.
    """
    items = dataset.split(split).items
    pixels = torch.stack([loaded.preprocess(dataset.source.open(i)) for i in items])
    batches = [
        pixels[a : a + batch_size].to(loaded.device) for a in range(0, len(items), batch_size)
    ]
    if loaded.device.type == "cuda":
        batches = [b.contiguous(memory_format=torch.channels_last) for b in batches]
    default = torch.get_num_threads()
    counts = {default} if loaded.device.type == "cuda" else {default, max(1, default - 1), 1}
    best = float("inf")
    try:
        for threads in sorted(counts, reverse=True):
            torch.set_num_threads(threads)
            best = min(best, _time_forward(loaded, batches, repeats))
    finally:
        torch.set_num_threads(default)
    return len(items) / best


def _time_forward(loaded, batches: list[torch.Tensor], repeats: int) -> float:
    from workers.ml.device import inference_context

    best = float("inf")
    for _ in range(repeats):
        _sync(loaded.device)
        t0 = time.perf_counter()
        with inference_context(loaded.device, loaded.autocast_dtype):
            for b in batches:
                loaded.model.encode_image(b)
        _sync(loaded.device)
        best = min(best, time.perf_counter() - t0)
    return best


def whole_path(loaded, dataset, split: str, out: Path, batch_size: int, workers: int | None,
               repeats: int) -> float:  # fmt: skip
    """Images/second of embed_dataset, fresh output directory each time (best of `repeats`)."""
    from workers.ml.embed import embed_dataset

    best = float("inf")
    for _ in range(repeats):
        shutil.rmtree(out, ignore_errors=True)
        t0 = time.perf_counter()
        embed_dataset(loaded, dataset, split=split, out_dir=out, batch_size=batch_size,
                      num_workers=workers, resume=False)  # fmt: skip
        best = min(best, time.perf_counter() - t0)
    return len(dataset.split(split)) / best


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def make_dataset(root: Path, n: int, size: int):
    """A generated 'textures' task with about n test images of size x size pixels (PNG)."""
    from app.imagedata import open_dataset
    from workers.ml.synth import generate_task

    per_class = max(2, -(-n // 6))
    path = root / f"textures-{size}-{per_class}"
    if not (path / "dataset.json").is_file():
        shutil.rmtree(path, ignore_errors=True)
        generate_task("textures", path, per_class=per_class, seed=0, size=size, test_fraction=0.999)
    return open_dataset(path, name="textures", fingerprint_mode="stat")


def run_one(name: str, args: argparse.Namespace, root: Path) -> tuple[str, float, float]:
    from workers.ml.models import load_model

    loaded = load_model(MODELS[name], device=args.device, precision=args.dtype)
    size = loaded.preprocess.transforms[1].size[0]
    n = args.n or (1024 if name == "tiny" else 192) // (4 if args.quick else 1)
    dataset = make_dataset(root, n, size)
    bs = min(args.batch_size, n)
    repeats = 1 if args.quick else 2
    whole_path(loaded, dataset, "test", root / "warm", bs, args.workers, 1)  # warm-up
    bare = bare_forward(loaded, dataset, "test", bs, repeats)
    whole = whole_path(loaded, dataset, "test", root / f"run-{name}", bs, args.workers, repeats)
    return name, whole, bare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tiny,ViT-B-32")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16", "auto"])
    parser.add_argument("--n", type=int, default=0, help="images (default 1024 tiny, 192 ViT-B-32)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers (auto)")
    parser.add_argument("--quick", action="store_true", help="a quarter of the images, 1 repeat")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "embed")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"device={args.device} dtype={args.dtype} cpus={os.cpu_count()} "
          f"torch_threads={torch.get_num_threads()} load={os.getloadavg()[0]:.2f}")  # fmt: skip
    print(f"{'model':<10} {'whole path img/s':>17} {'bare forward img/s':>19} {'ratio':>7}")
    for name in args.models.split(","):
        model, whole, bare = run_one(name, args, args.out)
        print(f"{model:<10} {whole:>17.1f} {bare:>19.1f} {whole / bare:>7.1%}", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
