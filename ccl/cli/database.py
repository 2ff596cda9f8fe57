"""Run one piece of work of a command against the database, on a reactor of its own.

The commands that reuse the services' storage adapters and use cases (``ccl model``,
``ccl report``) open a small txpostgres pool, run ``work(db)`` (a coroutine function) and say
plainly when the database cannot be reached instead of waiting for it as a service would.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable


def with_database(command: str, dsn: str, wait_s: float, work: Callable[[object], Awaitable[int]]) -> int:
    """The exit status of ``work(db)``; 1 with a message when the database is not reachable
    within ``wait_s`` or fails on the way."""
    from twisted.internet import defer, task

    from ccl.adapters.storage.postgres import Database
    from ccl.ports import StoreUnavailable

    outcome = {"status": 1}

    async def main(reactor):
        db = Database(reactor, dsn, size=1)
        try:
            # Database.start waits for a database that is down (right for a service); a command says so.
            await db.start().addTimeout(wait_s, reactor)
        except defer.TimeoutError:
            db.close()
            sys.stderr.write(f"{command}: the database is not reachable (waited {wait_s:g} s)\n")
            return
        try:
            outcome["status"] = await work(db)
        except StoreUnavailable as error:
            sys.stderr.write(f"{command}: the database failed: {str(error).strip() or 'unavailable'}\n")
        finally:
            db.close()

    try:
        task.react(lambda reactor: defer.ensureDeferred(main(reactor)))
    except SystemExit as exit_:  # react always exits; a failure of main (a bug) is exit code 1
        if exit_.code not in (0, None):
            sys.stderr.write(f"{command}: failed (see above)\n")
            return 1
    return outcome["status"]
