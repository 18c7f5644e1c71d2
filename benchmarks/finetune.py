"""Benchmark of the fine-tuning methods: training step time and peak memory relative to ``full``.

For each model (the tiny test config, and ViT-B-32 with random weights) and each method of
``workers.ml.finetune.METHODS`` the library's own ``Trainer.train_step`` runs on random
images (batch ``--batch``, 10 classes × 1 prompt template, so the text tower runs every step
for the methods that train it): one warm-up step, then the best of ``--steps`` timed steps
(default 10 on the tiny model, 3 on ViT-B-32, 2 with ``--quick``).

Memory is the peak above the process's footprint before the model was built:
- CPU: each (model, method) runs in a forked child; ``VmHWM − VmRSS`` at start, from
  ``/proc/self/status`` (resident memory: weights, gradients, optimizer state, activations);
- CUDA: ``torch.cuda.max_memory_allocated`` (reset before the model is built), in-process.

Usage: ``python benchmarks/finetune.py`` (CPU, tiny + ViT-B-32), ``--quick`` (tiny only, few
steps), ``--device cuda`` (bf16 autocast; batch 128 unless ``--batch`` is given).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import open_clip
import torch
from torch.utils.data import TensorDataset

from workers.ml.finetune import METHODS, FinetuneConfig
from workers.ml.finetune.storage import LocalStore
from workers.ml.finetune.train import Trainer

TINY_CONFIG = Path(__file__).resolve().parents[1] / "workers" / "ml" / "configs" / "tiny-clip.json"
CLASS_NAMES = [f"class {i}" for i in range(10)]
TEMPLATES = ["a photo of a {}."]


def _proc_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _build_trainer(model_name: str, method: str, batch: int, device: torch.device) -> Trainer:
    torch.manual_seed(0)
    model = open_clip.create_model(model_name, pretrained=None)
    size = model.visual.image_size
    size = size[0] if isinstance(size, tuple) else size
    images = torch.randn(batch, 3, size, size)
    data = TensorDataset(images, torch.arange(batch) % len(CLASS_NAMES))
    config = FinetuneConfig(method=method, batch_size=batch, epochs=1, lr=1e-3)
    store = LocalStore(tempfile.mkdtemp(prefix="ft-bench-"))
    tokenizer = open_clip.get_tokenizer(model_name)
    return Trainer(model, tokenizer, (data, None), CLASS_NAMES, TEMPLATES, config, store, device)


def _time_steps(trainer: Trainer, steps: int, device: torch.device) -> float:
    images, labels = next(iter(trainer.loader))
    trainer.ft.train()
    trainer.train_step(images, labels)  # warm-up: optimizer state, allocator, caches
    times = []
    for _ in range(steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        trainer.train_step(images, labels)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times)  # the least disturbed by other load on the machine


def measure_cpu(model_name: str, method: str, batch: int, steps: int) -> dict[str, Any]:
    """One (model, method) on CPU; meant to run in a fresh forked child."""
    before = _proc_kib("VmRSS")
    trainer = _build_trainer(model_name, method, batch, torch.device("cpu"))
    seconds = _time_steps(trainer, steps, torch.device("cpu"))
    peak_mib = (_proc_kib("VmHWM") - before) / 1024
    trainable = sum(p.numel() for p in trainer.params)
    return {"seconds": seconds, "peak_mib": peak_mib, "trainable": trainable}


def measure_cuda(model_name: str, method: str, batch: int, steps: int) -> dict[str, Any]:
    """One (model, method) on CUDA with bf16 autocast, in-process."""
    device = torch.device("cuda")
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    trainer = _build_trainer(model_name, method, batch, device)
    seconds = _time_steps(trainer, steps, device)
    peak_mib = (torch.cuda.max_memory_allocated() - base) / 2**20
    trainable = sum(p.numel() for p in trainer.params)
    del trainer
    return {"seconds": seconds, "peak_mib": peak_mib, "trainable": trainable}


def _child(queue: mp.Queue, args: tuple[str, str, int, int]) -> None:
    queue.put(measure_cpu(*args))


def run_one(device: str, args: tuple[str, str, int, int]) -> dict[str, Any]:
    if device == "cuda":
        return measure_cuda(*args)
    ctx = mp.get_context("fork")  # the parent has imported but never run torch kernels
    queue: mp.Queue = ctx.Queue()
    process = ctx.Process(target=_child, args=(queue, args))
    process.start()
    result = queue.get()
    process.join()
    return result


def table(model_name: str, rows: dict[str, dict[str, Any]], batch: int) -> str:
    full = rows["full"]
    lines = [
        f"**{model_name}**, batch {batch}: `full` step {full['seconds'] * 1000:.0f} ms, "
        f"peak {full['peak_mib']:.0f} MiB",
        "",
        "| method | trainable params | step time / full | peak memory / full |",
        "| --- | ---: | ---: | ---: |",
    ]
    for method, row in rows.items():
        lines.append(
            f"| {method} | {row['trainable']:,} | {row['seconds'] / full['seconds']:.2f} | "
            f"{row['peak_mib'] / full['peak_mib']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--quick", action="store_true", help="tiny model only, 2 timed steps")
    parser.add_argument("--batch", type=int, default=None, help="batch size (all models)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per method")
    parser.add_argument("--json", type=Path, default=None, help="also write raw figures here")
    args = parser.parse_args()
    open_clip.add_model_config(TINY_CONFIG)
    models = ["tiny-clip"] if args.quick else ["tiny-clip", "ViT-B-32"]
    raw: dict[str, Any] = {"device": args.device, "machine": platform.machine(), "models": {}}
    print(f"# {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    for model_name in models:
        default_batch = 128 if args.device == "cuda" else (32 if model_name == "tiny-clip" else 16)
        batch = args.batch or default_batch
        steps = args.steps or (2 if args.quick else (10 if model_name == "tiny-clip" else 3))
        rows = {m: run_one(args.device, (model_name, m, batch, steps)) for m in METHODS}
        raw["models"][model_name] = {"batch": batch, "rows": rows}
        print(table(model_name, rows, batch), "\n", flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(raw, indent=2))


if __name__ == "__main__":
    main()
