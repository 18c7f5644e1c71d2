"""Fixtures for the embedding-engine tests: a tiny open_clip model from the bundled JSON
architecture (random init, seeded, CPU) and small generated datasets."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.imagedata import DatasetLayout
from workers.ml.models import LoadedModel

REPO = Path(__file__).resolve().parents[3]
TINY_JSON = REPO / "workers" / "ml" / "configs" / "tiny-clip.json"


@pytest.fixture(scope="session")
def tiny_model() -> LoadedModel:
    """The tiny CLIP (embed_dim 32, 32 px images, context 16), loaded once."""
    from workers.ml.models import load_model

    return load_model(str(TINY_JSON), device="cpu", seed=0)


@pytest.fixture(scope="session")
def shapes_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic "shapes" task: 6 classes x 8 images (6 train, 2 test), 32 px."""
    from workers.ml.synth import generate_task

    return generate_task("shapes", tmp_path_factory.mktemp("shapes"), per_class=8, seed=0)


@pytest.fixture(scope="session")
def shapes(shapes_dir: Path) -> DatasetLayout:
    from app.imagedata import open_dataset

    return open_dataset(shapes_dir, seed=0)
