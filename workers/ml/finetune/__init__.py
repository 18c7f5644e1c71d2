"""Fine-tuning of open_clip dual encoders as in the IIMM paper, and evaluation.

Public API::

    finetune(model, tokenizer, train, val, class_names, templates, config=None, *,
             checkpoint_dir, device="auto", progress=None) -> FinetuneResult
    evaluate(model, tokenizer, data, class_names, templates, *, device="auto",
             batch_size=256, use_probe=None) -> EvalResult
    load_finetuned(base_model, checkpoint_dir) -> FinetunedCLIP
    validation_split(dataset, *, fraction=0.1, max_size=5000, seed=0) -> (train, val)
    METHODS: dict[str, Method]   # full, bitfit, attention, lora, adapter, probe
    FinetuneConfig, GridSpec     # dataclasses with a JSON round trip

Methods: full; BitFit (Ben Zaken et al. 2022); attention in-projection tuning; LoRA (Hu et
al. 2022); CLIP-Adapter (Gao et al. 2021); linear probe. Every error a caller can fix is a
:class:`FinetuneError` (the request is wrong, not the machine: no retry helps).
"""

from workers.ml.finetune.api import finetune
from workers.ml.finetune.config import PAPER_GRID, FinetuneConfig, GridSpec
from workers.ml.finetune.errors import (
    CheckpointMismatchError,
    FinetuneError,
    GridTooLargeError,
    InvalidConfigError,
    UnknownMethodError,
    UnsupportedArchitectureError,
)
from workers.ml.finetune.evaluate import EvalResult, evaluate, load_finetuned
from workers.ml.finetune.lora import merge_lora
from workers.ml.finetune.methods import METHODS, Method, get_method
from workers.ml.finetune.model import FinetunedCLIP
from workers.ml.finetune.results import EpochRecord, FinetuneResult, GridPoint
from workers.ml.finetune.splits import validation_split
from workers.ml.finetune.storage import LocalStore, Store
from workers.ml.finetune.train import ProgressCallback

__all__ = [
    "METHODS",
    "PAPER_GRID",
    "CheckpointMismatchError",
    "EpochRecord",
    "EvalResult",
    "FinetuneConfig",
    "FinetuneError",
    "FinetuneResult",
    "FinetunedCLIP",
    "GridPoint",
    "GridSpec",
    "GridTooLargeError",
    "InvalidConfigError",
    "LocalStore",
    "Method",
    "ProgressCallback",
    "Store",
    "UnknownMethodError",
    "UnsupportedArchitectureError",
    "evaluate",
    "finetune",
    "get_method",
    "load_finetuned",
    "merge_lora",
    "validation_split",
]
