"""Torch-free image-dataset handling shared by the API (upload validation) and the workers.

Layout detection (image folders, zip/tar archives, CSV/Parquet manifests), class names,
splits, safe archive extraction, robust decoding to RGB, dataset fingerprints, prompt
templates and model-spec parsing. Nothing here imports torch or open_clip.
"""

from app.imagedata.archive import ArchiveLimits, extract_archive, is_archive
from app.imagedata.decode import decode_image, to_rgb
from app.imagedata.errors import (
    ArchiveError,
    DecodeError,
    ImageDataError,
    LayoutError,
    ModelSpecError,
)
from app.imagedata.layout import DatasetLayout, FileSource, ImageSource, Split
from app.imagedata.model_specs import PRESETS, ModelSpec, resolve_spec
from app.imagedata.open import build_layout, check_classes, open_dataset
from app.imagedata.prompts import default_templates, render_prompts
from app.imagedata.splits import stratified_holdout, validation_size

__all__ = [
    "PRESETS",
    "ArchiveError",
    "ArchiveLimits",
    "DatasetLayout",
    "DecodeError",
    "FileSource",
    "ImageDataError",
    "ImageSource",
    "LayoutError",
    "ModelSpec",
    "ModelSpecError",
    "Split",
    "build_layout",
    "check_classes",
    "decode_image",
    "default_templates",
    "extract_archive",
    "is_archive",
    "open_dataset",
    "render_prompts",
    "resolve_spec",
    "stratified_holdout",
    "to_rgb",
    "validation_size",
]
