"""`iimm embed`: embed a dataset split with an open_clip model into a directory of .npy files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from iimm_cli._common import CliError, print_json


def register(sub: Any) -> None:
    """Add the `embed` subcommand."""
    p = sub.add_parser(
        "embed",
        help="embed a dataset split (images.npy, labels.npy, texts.npy, meta.json)",
        description=(
            "One forward pass of MODEL over a split of DATASET: image embeddings (float16), "
            "labels, class text embeddings, zero-shot accuracy and the measures' statistics. "
            "MODEL: clip | siglip | coca | eva02 | ARCH@TAG | ARCH@/path/ckpt.pt | "
            "ARCH@random | /path/arch.json[@/path/ckpt.pt] | hf-hub:org/repo. DATASET: an image "
            "folder, a zip/tar archive, a CSV/Parquet manifest or torchvision:NAME@ROOT."
        ),
    )
    p.add_argument("--model", required=True, help="model spec (see above)")
    p.add_argument("--dataset", required=True, help="dataset path or torchvision:NAME@ROOT")
    p.add_argument(
        "--split", default="test", help="train, test, val or train_no_val (default test)"
    )
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument(
        "--prompt",
        action="append",
        dest="prompts",
        metavar="TEMPLATE",
        help="prompt template with {c}; repeat for an ensemble (default: the dataset's)",
    )
    p.add_argument(
        "--prompts",
        dest="ensemble",
        metavar="NAME",
        help="a named ensemble instead: paper, clip_imagenet_80, clip_benchmark or "
        "clip_benchmark:<key>",
    )
    p.add_argument("--name", help="dataset name for default prompts (e.g. eurosat)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: auto)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    p.add_argument("--precision", default="auto", help="auto (bf16 on CUDA), fp32, bf16, fp16")
    p.add_argument(
        "--preprocess",
        default="auto",
        choices=["auto", "cpu", "device"],
        help="where images are resized and normalised: cpu (DataLoader workers, Pillow), "
        "device (workers only decode; batched on the GPU) or auto (device on CUDA)",
    )
    p.add_argument("--shard", help="START:STOP rows of the split (batch-aligned for exact merges)")
    p.add_argument("--skip-errors", action="store_true", help="skip undecodable images")
    p.add_argument("--no-resume", action="store_true", help="start over even if interrupted")
    p.add_argument("--seed", type=int, default=0, help="split and random-init seed")
    p.add_argument("--cache-dir", help="where pretrained weights are cached")
    p.add_argument("--extract-dir", help="where archives are extracted")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(handler=run)


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``START:STOP`` -> (start, stop)."""
    if not text:
        return None
    try:
        start, stop = (int(v) for v in text.split(":"))
    except ValueError:
        raise CliError(f"--shard must be START:STOP (integers), not {text!r}") from None
    return start, stop


def _progress(quiet: bool) -> Any:
    def report(fraction: float, stage: str, **units: object) -> None:
        if not quiet:
            print(
                f"\r{stage:>10} {fraction:6.1%}",
                end="" if stage != "done" else "\n",
                file=sys.stderr,
                flush=True,
            )

    return report


def run(args: argparse.Namespace) -> int:
    """Load model and dataset, embed, print the zero-shot accuracy and measures as JSON."""
    from app.imagedata.errors import ImageDataError
    from workers.ml.data import open_any
    from workers.ml.embed import embed_dataset
    from workers.ml.models import load_model

    try:
        options: dict[str, Any] = {"seed": args.seed}
        if not str(args.dataset).startswith("torchvision:"):
            options.update(name=args.name, extract_dir=args.extract_dir)
        dataset = open_any(args.dataset, **options)
        if args.name:
            dataset.name = args.name
        model = load_model(
            args.model,
            device=args.device,
            precision=args.precision,
            cache_dir=args.cache_dir,
            seed=args.seed,
        )
        result = embed_dataset(
            model,
            dataset,
            split=args.split,
            out_dir=args.out,
            prompts=args.ensemble or args.prompts,
            batch_size=args.batch_size,
            num_workers=args.workers,
            shard=parse_shard(args.shard),
            resume=not args.no_resume,
            progress=_progress(args.quiet),
            on_error="skip" if args.skip_errors else "fail",
            preprocess=args.preprocess,
        )
    except (ImageDataError, ValueError) as exc:
        raise CliError(str(exc)) from None
    print_json(
        {
            "out": str(result.out_dir),
            "n": result.n,
            "zero_shot": result.zero_shot,
            "measures": result.measures,
            "skipped": len(result.skipped),
            "timing": result.timing,
        }
    )
    return 0
