"""Errors of the image-data layer: each carries a message a user can act on."""

from __future__ import annotations


class ImageDataError(ValueError):
    """Base class: a dataset, archive, image or model spec that cannot be used as given."""


class LayoutError(ImageDataError):
    """The dataset's structure is unusable (no classes, one class, empty class, bad manifest)."""


class ArchiveError(ImageDataError):
    """An archive is unsafe (path escape, link, too many entries, bomb) or unreadable."""


class ArchiveTooLargeError(ArchiveError):
    """An archive holds too many entries or expands past the size limits; `limit` names the
    bound it broke: "entries", "bytes" (uncompressed total) or "ratio" (compression)."""

    def __init__(self, message: str, limit: str = "bytes") -> None:
        super().__init__(message)
        self.limit = limit

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        return (type(self), (str(self), self.limit))


class DecodeError(ImageDataError):
    """One image could not be decoded; the message names the file."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"cannot decode image {name!r}: {reason}")
        self.name = name
        self.reason = reason

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        # Picklable across DataLoader worker processes.
        return (type(self), (self.name, self.reason))


class ModelSpecError(ImageDataError):
    """A model spec string does not name a usable model."""
