"""Validating a dataset on disk: layout, classes, and every image decodable within limits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from app.config import Settings
from app.errors import InvalidError, TooLargeError
from app.imagedata import ArchiveError, ArchiveLimits, DatasetLayout, ImageDataError, open_dataset


def archive_limits(settings: Settings) -> ArchiveLimits:
    """The archive bounds from settings."""
    return ArchiveLimits(
        max_entries=settings.max_archive_entries,
        max_total_bytes=settings.max_uncompressed_bytes,
        max_ratio=settings.max_compression_ratio,
    )


def _check_pixels(layout: DatasetLayout, max_pixels: int) -> None:
    root = Path(layout.location)
    for split in layout.splits.values():
        for item in split.items:
            if not isinstance(item, str):
                return
            try:
                with Image.open(root / item) as img:
                    w, h = img.size
            except FileNotFoundError:
                raise InvalidError(f"{item}: file named by the dataset is missing") from None
            except Exception as exc:
                raise InvalidError(f"{item}: not a readable image ({exc})") from None
            if w * h > max_pixels:
                raise InvalidError(
                    f"{item}: {w}x{h} pixels is over the limit of {max_pixels} pixels"
                )


def _check_decodes(layout: DatasetLayout) -> None:
    seen: set[Any] = set()
    for split in layout.splits.values():
        for item in split.items:
            if item in seen:
                continue
            seen.add(item)
            layout.source.open(item)


def open_and_validate(
    path: Path,
    *,
    settings: Settings,
    name: str,
    class_names: list[str] | None = None,
    extract_dir: Path | None = None,
) -> DatasetLayout:
    """Open `path` as a dataset and decode every image; 4xx errors that say what is wrong."""
    Image.MAX_IMAGE_PIXELS = settings.max_image_pixels
    try:
        layout = open_dataset(
            path,
            name=name,
            class_names=class_names,
            extract_dir=extract_dir,
            limits=archive_limits(settings),
        )
        _check_pixels(layout, settings.max_image_pixels)
        _check_decodes(layout)
    except ArchiveError as exc:
        if "ratio" in str(exc) or "bytes" in str(exc) or "entries" in str(exc):
            raise TooLargeError(f"archive rejected: {exc}") from None
        raise InvalidError(f"archive rejected: {exc}") from None
    except ImageDataError as exc:
        raise InvalidError(str(exc)) from None
    return layout
