"""`iimm keys create --project NAME`: print a new API key scoped to a project."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    """Add the `keys` subcommand."""
    keys = sub.add_parser("keys", help="API keys")
    ksub = keys.add_subparsers(dest="keys_command", required=True)
    create = ksub.add_parser("create", help="create a key for a project (created if new)")
    create.add_argument("--project", required=True)
    create.add_argument("--admin", action="store_true")
    create.set_defaults(handler=run_create)


def run_create(args: argparse.Namespace) -> int:
    """Create the key (the database must be migrated) and print it once."""
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from app.auth.service import create_key
    from app.config import get_settings
    from app.db import make_engine, make_sessionmaker, session_scope
    from iimm_cli._common import CliError

    engine = make_engine(get_settings().db_url)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            key = create_key(session=session, project_name=args.project, is_admin=args.admin)
    except (OperationalError, ProgrammingError) as exc:
        raise CliError(f"database not ready (run `iimm db upgrade`): {exc}") from None
    finally:
        engine.dispose()
    print(key)
    return 0
