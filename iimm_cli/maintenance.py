"""`iimm maintenance`: the outbox relay, the reaper, webhook deliveries, the orphan and
retention sweep and the artifact usage measurement as a process of their own.

The API runs them in a thread by default (`IIMM_RUN_MAINTENANCE_IN_API=true`). A production
deployment with several API processes or replicas can instead set it to false everywhere
and run one `iimm maintenance` (both are safe to run more than once: the relay claims
outbox rows and the reaper's updates are conditional, but one is enough).
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from typing import Any


def register(sub: Any) -> None:
    """Add the `maintenance` subcommand."""
    p = sub.add_parser(
        "maintenance",
        help="run the outbox relay, the reaper, webhook deliveries, the sweep and usage",
    )
    p.add_argument("--once", action="store_true", help="one pass, then exit")
    p.set_defaults(handler=run_maintenance)


def run_maintenance(args: argparse.Namespace) -> int:
    """Relay every IIMM_RELAY_INTERVAL_S, reap every IIMM_REAPER_INTERVAL_S, sweep every
    IIMM_ORPHAN_SWEEP_INTERVAL_S, measure the store every IIMM_ARTIFACT_USAGE_INTERVAL_S,
    until SIGTERM (`--once`: each once)."""
    from app.config import get_settings
    from app.db import make_engine, make_sessionmaker
    from app.jobs.maintenance import Maintenance

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings = get_settings()
    engine = make_engine(settings.db_url)
    maintenance = Maintenance(make_sessionmaker(engine), settings)
    try:
        if args.once:
            maintenance.tick()
            maintenance.webhooks.once()
            return 0
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        maintenance.start()
        logging.getLogger("iimm.maintenance").info(
            "relay every %ss (%s), reaper every %ss", settings.relay_interval_s,
            "broker" if settings.uses_broker else "no broker: nothing to relay",
            settings.reaper_interval_s,
        )  # fmt: skip
        while not stop.wait(1.0):
            pass
        maintenance.stop()
        return 0
    finally:
        engine.dispose()
