"""Project-scoped rows (`app.ownership`), in process on a migrated SQLite database: another
project's id is a 404, a name taken in the project a 409 that leaves the session usable."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.db import make_engine, make_sessionmaker, session_scope
from app.errors import ConflictError, NotFoundError
from app.migrate import upgrade
from app.models import PretrainedModel, Project
from app.ownership import add_named, get_owned


@pytest.fixture
def factory(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    url = f"sqlite:///{tmp_path / 'o.db'}"
    upgrade(url)
    engine = make_engine(url)
    with session_scope(make_sessionmaker(engine)) as s:
        s.add_all([Project(id="prj_a", name="a"), Project(id="prj_b", name="b")])
    yield make_sessionmaker(engine)
    engine.dispose()


def _model(model_id: str, project_id: str, name: str) -> PretrainedModel:
    return PretrainedModel(id=model_id, project_id=project_id, name=name, arch="RN50",
                           pretrained="random")  # fmt: skip


def test_a_taken_name_is_a_conflict_and_the_session_goes_on(
    factory: sessionmaker[Session],
) -> None:
    with session_scope(factory) as s:
        add_named(s, _model("mdl_1", "prj_a", "clip"), "model")
        with pytest.raises(ConflictError, match="a model named 'clip' already exists"):
            add_named(s, _model("mdl_2", "prj_a", "clip"), "model")
        add_named(s, _model("mdl_3", "prj_b", "clip"), "model")  # another project: free
        add_named(s, _model("mdl_4", "prj_a", "clip-2"), "model")
    with session_scope(factory) as s:
        ids = s.scalars(select(PretrainedModel.id).order_by(PretrainedModel.id)).all()
        assert ids == ["mdl_1", "mdl_3", "mdl_4"]
        assert s.scalar(select(func.count()).select_from(PretrainedModel)) == 3


def test_another_projects_row_is_not_found(factory: sessionmaker[Session]) -> None:
    with session_scope(factory) as s:
        add_named(s, _model("mdl_1", "prj_a", "clip"), "model")
    with session_scope(factory) as s:
        assert get_owned(s, PretrainedModel, "mdl_1", "prj_a", "model").name == "clip"
        with pytest.raises(NotFoundError, match="model mdl_1 not found"):
            get_owned(s, PretrainedModel, "mdl_1", "prj_b", "model")
