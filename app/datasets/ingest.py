"""Validating a dataset on disk: layout, classes, and every image decodable within limits."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from app.config import Settings
from app.errors import AppError, InvalidError, TooLargeError
from app.imagedata import ArchiveError, ArchiveLimits, DatasetLayout, ImageDataError, open_dataset
from app.imagedata.decode import ExifOrientationWarning
from app.imagedata.errors import ArchiveTooLargeError

#: Called as images are decoded: (images done, images in all).
Progress = Callable[[int, int], None]


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
            except UnidentifiedImageError:  # its text holds the file's server path
                raise InvalidError(
                    f"{item}: not a readable image (not a format Pillow can identify)"
                ) from None
            except Exception as exc:
                reason = scrub_paths(str(exc), root / item, root, replace=item)
                raise InvalidError(f"{item}: not a readable image ({reason})") from None
            if w * h > max_pixels:
                raise InvalidError(
                    f"{item}: {w}x{h} pixels is over the limit of {max_pixels} pixels"
                )


def _check_decodes(layout: DatasetLayout, progress: Progress | None = None) -> None:
    """Decode every image once; images whose EXIF orientation could not be applied are
    listed in a warning on the layout (they are used unrotated)."""
    seen: set[Any] = set()
    unrotated: list[str] = []
    total = sum(len(split.items) for split in layout.splits.values())
    for split in layout.splits.values():
        for item in split.items:
            if item in seen:
                continue
            seen.add(item)
            if progress is not None and len(seen) % 64 == 1:
                progress(len(seen) - 1, total)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ExifOrientationWarning)
                layout.source.open(item)
            if any(issubclass(w.category, ExifOrientationWarning) for w in caught):
                unrotated.append(layout.source.describe(item))
    if unrotated:
        layout.warnings.append({
            "code": "exif_orientation_not_applied",
            "detail": f"{len(unrotated)} images have an EXIF orientation that cannot be read; "
            "they are used as stored, unrotated",
            "items": unrotated[:50],
        })  # fmt: skip


def scrub_paths(text: str, *paths: Path | str | None, replace: str = "<upload>") -> str:
    """`text` with the server's own folders (`paths`) cut out of it: ``folder/`` prefixes
    are dropped (leaving the name inside the upload), a folder alone becomes `replace`.
    Longer paths are cut first, so a file inside a listed folder keeps its member name."""
    for p in sorted({str(p) for p in paths if p}, key=len, reverse=True):
        text = text.replace(p + "/", "").replace(p, replace)
    return text


def user_message(exc: Exception, *paths: Path | str | None) -> str:
    """`exc`'s message with the server's own folders (`paths`) cut out of it."""
    return scrub_paths(str(exc), *paths)


#: The setting that bounds each `ArchiveTooLargeError.limit`.
LIMIT_SETTINGS = {"entries": "max_archive_entries", "bytes": "max_uncompressed_bytes",
                  "ratio": "max_compression_ratio"}  # fmt: skip


def archive_problem(exc: ArchiveError, settings: Settings, *paths: Path | str | None) -> AppError:
    """The 413 (too large: naming the setting an operator raises) or 422 of an archive
    the extraction refused, with the server's folders (`paths`) cut out."""
    msg = f"archive rejected: {user_message(exc, *paths)}"
    if isinstance(exc, ArchiveTooLargeError):
        field = LIMIT_SETTINGS.get(exc.limit, "max_uncompressed_bytes")
        msg += (f"; if the archive is genuine, the service's operator can raise "
                f"IIMM_{field.upper()} (now {getattr(settings, field)})")  # fmt: skip
        return TooLargeError(msg)
    return InvalidError(msg)


def open_and_validate(
    path: Path,
    *,
    settings: Settings,
    name: str,
    class_names: list[str] | None = None,
    extract_dir: Path | None = None,
    name_encoding: str | None = None,
    progress: Progress | None = None,
) -> DatasetLayout:
    """Open `path` as a dataset and decode every image; 4xx errors that say what is wrong
    (naming entries and rows of the upload, never a folder of the server). `progress` is
    called every 64 images decoded (it may raise to stop)."""
    Image.MAX_IMAGE_PIXELS = settings.max_image_pixels
    try:
        layout = open_dataset(
            path,
            name=name,
            class_names=class_names,
            extract_dir=extract_dir,
            limits=archive_limits(settings),
            name_encoding=name_encoding,
        )
        _check_pixels(layout, settings.max_image_pixels)
        _check_decodes(layout, progress)
    except ArchiveError as exc:
        raise archive_problem(exc, settings, path.parent, extract_dir, settings.data_dir) from None
    except ImageDataError as exc:
        raise InvalidError(user_message(exc, path.parent, extract_dir, settings.data_dir)) from None
    except InvalidError as exc:  # a safety net: our own messages name members, not folders
        exc.detail = scrub_paths(exc.detail, path.parent, extract_dir, settings.data_dir)
        raise
    return layout
