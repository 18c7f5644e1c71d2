"""Artifact storage through fsspec: a local directory by default, any fsspec URL otherwise."""

from app.artifacts.storage import Storage

__all__ = ["Storage"]
