"""``python -m gifting.persister [persist|migrate|audit]``: the persister without the CLI.

Configured from the environment like the server (``REDIS_URL``,
``DATABASE_URL``, ``GIFTING_KEY_PREFIX``, ``GIFTING_PERSISTER_*``).
"""

from __future__ import annotations

import asyncio
import logging
import sys

from gifting.config import Settings
from gifting.persister.service import run_audit_cli, run_migrate, run_persister


def main(argv: list[str]) -> int:
    """Run one command (default ``persist``); return the exit status."""
    command = argv[0] if argv else "persist"
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = Settings()
    if command == "persist":
        asyncio.run(run_persister(settings))
        return 0
    if command == "migrate":
        asyncio.run(run_migrate(settings))
        return 0
    if command == "audit":
        return asyncio.run(run_audit_cli(settings))
    sys.stderr.write(f"usage: python -m gifting.persister [persist|migrate|audit] ({command!r}?)\n")
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
