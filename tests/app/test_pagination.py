"""Keyset pagination: every row exactly once, in order, both directions; bad cursors are 422."""

from __future__ import annotations

import pytest
from sqlalchemy import String, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from app.errors import InvalidError
from app.pagination import page


class _Base(DeclarativeBase):
    pass


class _Row(_Base):
    __tablename__ = "rows"
    id: Mapped[str] = mapped_column(String, primary_key=True)


@pytest.fixture()
def session() -> Session:
    engine = create_engine("sqlite://")
    _Base.metadata.create_all(engine)
    s = Session(engine)
    s.add_all(_Row(id=f"row_{i:03d}") for i in range(23))
    s.flush()
    return s


def _walk(session: Session, limit: int, newest_first: bool) -> list[list[str]]:
    pages, cursor = [], None
    while True:
        rows, cursor = page(
            session, select(_Row), _Row.id, cursor, limit, newest_first=newest_first
        )
        pages.append([r.id for r in rows])
        if cursor is None:
            return pages


@pytest.mark.parametrize("newest_first", [True, False])
@pytest.mark.parametrize("limit", [1, 5, 23, 50])
def test_pages_cover_every_row_once_in_order(
    session: Session, limit: int, newest_first: bool
) -> None:
    pages = _walk(session, limit, newest_first)
    flat = [i for p in pages for i in p]
    expected = sorted((f"row_{i:03d}" for i in range(23)), reverse=newest_first)
    assert flat == expected
    assert all(len(p) == limit for p in pages[:-1]) and 0 < len(pages[-1]) <= limit
    assert len(pages) == -(-23 // limit)


def test_a_foreign_cursor_is_a_clear_422(session: Session) -> None:
    with pytest.raises(InvalidError, match="cursor is not valid"):
        page(session, select(_Row), _Row.id, "%%%not-ours", 5)
