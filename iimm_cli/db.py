"""`iimm db upgrade` and `iimm keys create`: administration straight on the database."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    """Add the `db` and `keys` subcommands."""
    db = sub.add_parser("db", help="database administration")
    dsub = db.add_subparsers(dest="db_command", required=True)
    up = dsub.add_parser("upgrade", help="apply migrations (and create the first admin key)")
    up.set_defaults(handler=run_upgrade)


def run_upgrade(args: argparse.Namespace) -> int:
    """Apply every migration to IIMM_DATABASE_URL (or the embedded SQLite file)."""
    from app.config import get_settings
    from app.main import prepare_database

    settings = get_settings()
    prepare_database(settings)
    print(f"database at head: {settings.db_url.split('@')[-1]}")
    return 0
