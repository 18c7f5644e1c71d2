"""Benchmark: images/second of the whole embedding path against the bare forward pass.

The whole path is `workers.ml.embed.embed_dataset` on a generated PNG dataset: decode (and,
with ``--preprocess cpu``, resize/crop) in DataLoader workers, device-side resize/crop and
normalisation with ``--preprocess device``, forward, float16 write, zero-shot top-5 and the
measures' statistics. The baseline is `model.encode_image` alone on the same images,
preprocessed beforehand, in the same process, batch for batch (on the device already). The
two are timed alternately, ``--repeats`` times each, and the best of each is kept, so that a
change of load on a shared machine hits both. Decoding workers persist between the runs of a
process (`workers.ml.data.pool`, as in a service worker); the process's first run, which
starts them, is printed under each row, and for ``device`` rows the device preprocessing
alone. ``--cpu-costs`` adds the CPU microseconds per
image of the workers' decoding and of the forward pass, and the ratio they allow on this
machine's cores.

Models are random init: the tiny bundled architecture and ViT-B-32. ``--image-size`` sets the
generated images' size (default: the model's input size); the paper's datasets are mostly
small images (CIFAR 32 px, EuroSAT 64 px) upsampled to 224.

    python benchmarks/embed.py                 # CPU, both models, cpu preprocessing
    python benchmarks/embed.py --quick         # a smoke run
    python benchmarks/embed.py --models tiny --n 4096 --cpu-costs
    python benchmarks/embed.py --device cuda --dtype bf16 --n 8192 --batch-size 512 \
        --workers 15 --preprocess both --image-size 64
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from app.config import get_settings

REPO = Path(__file__).resolve().parents[1]
UNIQUE_PER_CLASS = 512
MODELS = {
    "tiny": str(REPO / "workers" / "ml" / "configs" / "tiny-clip.json"),
    "ViT-B-32": "ViT-B-32@random",
}


def bare_forward(loaded, batches: list[torch.Tensor], repeats: int) -> float:
    """Seconds of encode_image alone on `batches` (preprocessed, already on the device).

    On CPU the best over intra-op thread counts (all cores, one fewer, one) is kept, so the
    baseline is the fastest bare forward pass this machine gives at the time.
    """
    default = torch.get_num_threads()
    counts = {default} if loaded.device.type == "cuda" else {default, max(1, default - 1), 1}
    best = float("inf")
    try:
        for threads in sorted(counts, reverse=True):
            torch.set_num_threads(threads)
            best = min(best, _time_forward(loaded, batches, repeats))
    finally:
        torch.set_num_threads(default)
    return best


def bare_batches(loaded, dataset, split: str, batch_size: int, workers: int | None):
    """The split's images preprocessed once, batch for batch, on the device (the tensors are
    made by the device preprocessing: fast; the bare forward does not depend on how)."""
    batches = _preprocessed_batches(loaded, dataset, split, batch_size, workers)
    if loaded.device.type == "cuda":
        batches = [b.contiguous(memory_format=torch.channels_last) for b in batches]
    return batches


def _preprocessed_batches(
    loaded, dataset, split: str, batch_size: int, workers: int | None
) -> list[torch.Tensor]:
    """The split's images, model-ready, in batches on the model's device."""
    return [step(raw) for step, raw in _raw_batches(loaded, dataset, split, batch_size, workers)]


def _raw_batches(loaded, dataset, split: str, batch_size: int, workers: int | None) -> list:
    """(preprocessing, batch) pairs on the model's device: decoded uint8 images with the
    device preprocessing when the model's transform allows it, else Pillow-preprocessed
    tensors with the identity."""
    from workers.ml.data.tensor_decode import NATIVE, ImageBatches, passthrough
    from workers.ml.gpu_preprocess import from_transform

    items = dataset.split(split).items
    step = from_transform(loaded.preprocess)
    if step is None:  # a transform we do not reproduce: Pillow in this process
        pixels = torch.stack([loaded.preprocess(dataset.source.open(i)) for i in items])
        return [
            (lambda x: x, pixels[a : a + batch_size].to(loaded.device))
            for a in range(0, len(items), batch_size)
        ]
    loader = torch.utils.data.DataLoader(
        ImageBatches(dataset.source, items, NATIVE),
        batch_size=batch_size,
        collate_fn=passthrough,
        num_workers=min(workers or 0, 8),
    )
    batches = []
    for pixels, _, _ in loader:
        moved = (
            pixels.to(loaded.device)
            if isinstance(pixels, torch.Tensor)
            else [p.to(loaded.device) for p in pixels]
        )
        batches.append((step, moved))
    return batches


def device_step_seconds(loaded, raw: list, repeats: int) -> float:
    """Seconds of the device preprocessing alone (resize, crop, normalise) over the split's
    decoded batches, already on the device: its share of a ``device`` run's device time."""
    best = float("inf")
    for _ in range(repeats + 1):  # the first pass builds the resize matrices
        _sync(loaded.device)
        t0 = time.perf_counter()
        for step, batch in raw:
            step(batch)
        _sync(loaded.device)
        best = min(best, time.perf_counter() - t0)
    return best


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


def cpu_costs(loaded, dataset, split: str, batch_size: int, preprocess: str) -> dict[str, float]:
    """CPU microseconds per image of the workers' decoding and of the bare forward pass, and
    the ratio the whole path could at most reach on this machine's cores.

    Decoding is the workers' dataset run in this process (``"cpu"``: decode, resize and crop
    to uint8; ``"device"``: decode only, at the images' own size); the forward is
    process CPU time at 1 intra-op thread (the least CPU per image). Both must run on
    ``cores`` cores, so whole / bare <= bare seconds per image x cores / (decode + forward).
    Main-process work (normalisation, write, top-k, statistics) comes on top.
    """
    from workers.ml.data.tensor_decode import NATIVE, ImageBatches
    from workers.ml.gpu_preprocess import split_for_device

    items = dataset.split(split).items
    cuts = [
        list(range(a, min(a + batch_size, len(items)))) for a in range(0, len(items), batch_size)
    ]
    transform = split_for_device(loaded.preprocess)[0] if preprocess == "cpu" else NATIVE
    worker = ImageBatches(dataset.source, items, transform)
    t0 = time.process_time()
    for batch in cuts:
        worker.__getitems__(batch)
    decode = (time.process_time() - t0) / len(items) * 1e6
    batches = _preprocessed_batches(loaded, dataset, split, batch_size, 0)
    default = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _time_forward(loaded, batches, 1)  # warm-up
        t0 = time.process_time()
        _time_forward(loaded, batches, 1)
        forward = (time.process_time() - t0) / len(items) * 1e6
    finally:
        torch.set_num_threads(default)
    return {"decode_us": decode, "forward_us": forward, "cores": float(_cores())}


def decoder_costs(dataset, split: str, limit: int = 512) -> dict[str, float]:
    """CPU microseconds per image (process time, 1 thread) of the embedding path's decoding
    (`workers.ml.data.tensor_decode.decode`: Pillow, to uint8 RGB at native size) against
    torchvision's libpng/libjpeg decoder (``torchvision.io.decode_image``, what the path used
    before for PNGs and JPEGs Pillow would not treat differently), on up to `limit` of the
    split's PNGs and on the same images re-encoded as JPEG (quality 90). Both from bytes in
    memory. The path's decode capacity on c cores is c x 1e6 / us images per second, to set
    against the bare forward's rate."""
    import io

    from PIL import Image

    class Bytes:  # a source over encoded bytes in memory, like a manifest's
        def __init__(self, blobs: list[bytes]) -> None:
            self.blobs = blobs

        def open(self, item: int) -> Image.Image:
            from app.imagedata.decode import decode_image as pillow

            return pillow(self.blobs[item])

    items = dataset.split(split).items[:limit]
    pngs = []
    for item in items:
        buf = io.BytesIO()
        dataset.source.open(item).save(buf, "PNG")
        pngs.append(buf.getvalue())
    jpegs = []
    for blob in pngs:
        buf = io.BytesIO()
        Image.open(io.BytesIO(blob)).convert("RGB").save(buf, "JPEG", quality=90)
        jpegs.append(buf.getvalue())
    default = torch.get_num_threads()
    torch.set_num_threads(1)
    out = {}
    try:
        for fmt, blobs in (("png", pngs), ("jpeg", jpegs)):
            source = Bytes(blobs)
            out[f"{fmt}_pillow_us"] = _best_us([(source, i) for i in range(len(blobs))], _pillow)
            out[f"{fmt}_torchvision_us"] = _best_us(blobs, _torchvision)
    finally:
        torch.set_num_threads(default)
    return out


def _pillow(args: tuple[Any, int]) -> torch.Tensor:
    from workers.ml.data.tensor_decode import NATIVE, decode

    return decode(*args, NATIVE)


def _torchvision(blob: bytes) -> torch.Tensor:
    import warnings

    from torchvision.io import ImageReadMode, decode_image

    raw = torch.frombuffer(bytearray(blob), dtype=torch.uint8)
    with warnings.catch_warnings():  # torchvision 0.29 deprecates its decoders (TorchCodec)
        warnings.simplefilter("ignore", DeprecationWarning)
        return decode_image(raw, mode=ImageReadMode.RGB)


def _best_us(inputs: list[Any], fn: Any, repeats: int = 3) -> float:
    """Least process CPU microseconds per input of `fn` over `inputs`."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.process_time()
        for x in inputs:
            fn(x)
        best = min(best, time.process_time() - t0)
    return best / len(inputs) * 1e6


class _LastStages(logging.Handler):
    """Keeps the stage breakdown the embedding loop logs at the end of each run."""

    line = ""

    def emit(self, record: logging.LogRecord) -> None:
        self.line = record.getMessage()


STAGES = _LastStages()
logging.getLogger("workers.ml.loop").addHandler(STAGES)
logging.getLogger("workers.ml.loop").setLevel(logging.INFO)
logging.getLogger("workers.ml.loop").propagate = False  # printed with its row instead


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def whole_path(loaded, dataset, split: str, out: Path, batch_size: int, workers: int | None,
               repeats: int, preprocess: str) -> float:  # fmt: skip
    """Seconds of embed_dataset, fresh output directory each time (best of `repeats`)."""
    from workers.ml.embed import embed_dataset

    best = float("inf")
    for _ in range(repeats):
        shutil.rmtree(out, ignore_errors=True)
        t0 = time.perf_counter()
        embed_dataset(loaded, dataset, split=split, out_dir=out, batch_size=batch_size,
                      num_workers=workers, resume=False, preprocess=preprocess)  # fmt: skip
        _sync(loaded.device)
        best = min(best, time.perf_counter() - t0)
    return best


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def make_dataset(root: Path, n: int, size: int):
    """A generated 'textures' task with about n test images of size x size pixels (PNG).

    At most `UNIQUE_PER_CLASS` images per class are drawn (generation is single-threaded,
    about 2 ms an image); the rest are hard links to them, so large n costs no more time
    to prepare and every file is still read and decoded.
    """
    from app.imagedata import open_dataset
    from workers.ml.synth import generate_task

    per_class = max(2, -(-n // 6))
    path = root / f"textures-{size}-{per_class}"
    if not (path / "dataset.json").is_file():
        shutil.rmtree(path, ignore_errors=True)
        unique = min(per_class, UNIQUE_PER_CLASS)
        generate_task("textures", path, per_class=unique, seed=0, size=size, test_fraction=0.999)
        _replicate(path, per_class)
    return open_dataset(path, name="textures", fingerprint_mode="stat")


def _replicate(path: Path, per_class: int) -> None:
    """Fill every class folder of the test split up to `per_class` files with links."""
    for folder in sorted(p for p in (path / "test").iterdir() if p.is_dir()):
        files = sorted(folder.glob("*.png"))
        for k in range(len(files), per_class if files else 0):
            target = folder / f"r{k:06d}.png"
            try:
                os.link(files[k % len(files)], target)
            except OSError:
                shutil.copyfile(files[k % len(files)], target)


def run_one(name: str, args: argparse.Namespace, root: Path) -> list[dict[str, Any]]:
    """One row per preprocessing mode: model, mode, whole and bare img/s (each the best of
    `repeats`, measured alternately so that a change of load hits both), CPU costs."""
    from workers.ml.data.pool import close_pool
    from workers.ml.gpu_preprocess import resolve_preprocess
    from workers.ml.models import load_model

    loaded = load_model(MODELS[name], device=args.device, precision=args.dtype)
    size = args.image_size or loaded.preprocess.transforms[1].size[0]
    n = args.n or (1024 if name == "tiny" else 192) // (4 if args.quick else 1)
    dataset = make_dataset(root, n, size)
    n = len(dataset.split("test"))
    bs = min(args.batch_size or (256 if name == "tiny" else 32), n)
    repeats = 1 if args.quick else args.repeats
    batches = bare_batches(loaded, dataset, "test", bs, args.workers)
    modes = ["cpu", "device"] if args.preprocess == "both" else [args.preprocess]
    rows = []
    for mode in modes:
        resolved = resolve_preprocess(mode, loaded.preprocess, loaded.device)
        close_pool()  # the first run of a process starts the decoding workers
        cold = whole_path(loaded, dataset, "test", root / "warm", bs, args.workers, 1, resolved)
        out = root / f"run-{name}-{resolved}"
        whole = bare = float("inf")
        stages = ""
        for _ in range(repeats):
            bare = min(bare, bare_forward(loaded, batches, 1))
            seconds = whole_path(loaded, dataset, "test", out, bs, args.workers, 1, resolved)
            if seconds < whole:
                whole, stages = seconds, STAGES.line
        row = {"model": name, "mode": resolved, "batch": bs, "whole": n / whole, "bare": n / bare,
               "stages": stages, "cold": n / cold}  # fmt: skip
        if resolved == "device":
            raw = _raw_batches(loaded, dataset, "test", bs, args.workers)
            row["step"] = n / device_step_seconds(loaded, raw, repeats)
            os.environ["IIMM_DEVICE_RESIZE"] = "interpolate"  # the previous implementation
            get_settings.cache_clear()
            try:
                row["step_kernel"] = n / device_step_seconds(loaded, raw, repeats)
            finally:
                del os.environ["IIMM_DEVICE_RESIZE"]
                get_settings.cache_clear()
            del raw
        if args.cpu_costs and loaded.device.type == "cpu":
            row.update(cpu_costs(loaded, dataset, "test", bs, resolved), bare_s=bare / n)
        if args.decoders and mode == modes[0]:
            row["decoders"] = decoder_costs(dataset, "test")
        rows.append(row)
    return rows


def _print_row(row: dict[str, Any]) -> None:
    line = (f"{row['model']:<10} {row['mode']:<10} {row['batch']:>5} {row['whole']:>17.1f} "
            f"{row['bare']:>19.1f} {row['whole'] / row['bare']:>7.1%}")  # fmt: skip
    if "decode_us" in row:
        ceiling = row["bare_s"] * 1e6 * row["cores"] / (row["decode_us"] + row["forward_us"])
        line += (f"   CPU us/img: decode {row['decode_us']:.1f}, forward "
                 f"{row['forward_us']:.1f} (1 thread); ceiling on {row['cores']:.0f} cores "
                 f"{min(1.0, ceiling):.0%}")  # fmt: skip
    print(line, flush=True)
    extra = f"    first run of the process (starts the decoding workers): {row['cold']:.1f} img/s"
    if "step" in row:
        extra += (f"; device preprocessing alone: {row['step']:.1f} img/s (with PyTorch's "
                  f"resampling kernel: {row['step_kernel']:.1f})")  # fmt: skip
    print(extra, flush=True)
    if "decoders" in row:
        d, cores = row["decoders"], _cores()
        for fmt in ("png", "jpeg"):
            pil, tv = d[f"{fmt}_pillow_us"], d[f"{fmt}_torchvision_us"]
            print(f"    decoding a {fmt} (CPU us/img, 1 thread): Pillow {pil:.1f}, torchvision "
                  f"{tv:.1f} ({pil / tv:.2f}x); Pillow on {cores} cores: "
                  f"{cores * 1e6 / pil:.0f} img/s", flush=True)  # fmt: skip
    if row.get("stages"):  # where the fastest whole run's time went (workers.ml.loop.Stages)
        print(f"    stages of the fastest run: {row['stages']}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tiny,ViT-B-32")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16", "auto"])
    parser.add_argument("--n", type=int, default=0, help="images (default 1024 tiny, 192 ViT-B-32)")
    parser.add_argument(
        "--batch-size", type=int, default=0, help="default 256 for tiny, 32 for ViT-B-32"
    )
    parser.add_argument("--repeats", type=int, default=3, help="alternate bare/whole runs")
    parser.add_argument(
        "--cpu-costs", action="store_true", help="also CPU us/image of decode and forward"
    )
    parser.add_argument(
        "--decoders", action="store_true", help="also Pillow vs torchvision decoding CPU us/image"
    )
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers (auto)")
    parser.add_argument("--preprocess", default="cpu", choices=["cpu", "device", "auto", "both"])
    parser.add_argument(
        "--image-size", type=int, default=0, help="generated image size (default: the model's)"
    )
    parser.add_argument("--quick", action="store_true", help="a quarter of the images, 1 repeat")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "embed")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"device={args.device} dtype={args.dtype} cpus={os.cpu_count()} "
          f"torch_threads={torch.get_num_threads()} load={os.getloadavg()[0]:.2f} "
          f"image_size={args.image_size or 'model'} batch={args.batch_size or 'auto'} "
          f"workers={args.workers}")  # fmt: skip
    print(f"{'model':<10} {'preprocess':<10} {'batch':>5} {'whole path img/s':>17} "
          f"{'bare forward img/s':>19} {'ratio':>7}")  # fmt: skip
    t0 = time.perf_counter()
    for name in args.models.split(","):
        for row in run_one(name, args, args.out):
            _print_row(row)
    print(f"load average after: {os.getloadavg()[0]:.2f}; total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
