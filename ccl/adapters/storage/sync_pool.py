"""Blocking psycopg2 connections on a thread pool of their own: the one threaded psycopg2 worker.

txpostgres has no COPY and no executemany. What needs them runs here, one connection per
thread, kept open between calls: the MES writer (one thread; it manages its transactions
and prepared statements itself, ``call``), the ingest's defect batches and image pairs and
the retention job (each call one transaction, ``run``). A connection that fails is dropped
and the next call opens a fresh one; a database outage reaches the caller as
``ports.StoreUnavailable``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import psycopg2
from twisted.internet import defer
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from ccl.adapters.storage.postgres import UNAVAILABLE
from ccl.ports import StoreUnavailable


class SyncPool:
    """``size`` threads with a connection each. ``on_connect(connection)`` runs in the thread
    after each new connection is opened (session settings, forgetting per-connection state)."""

    def __init__(self, reactor, dsn: str, size: int = 2, name: str = "db-sync",
                 on_connect: Callable[[Any], None] | None = None):
        self._reactor = reactor
        self._dsn = dsn
        self._on_connect = on_connect
        self._threads = ThreadPool(minthreads=0, maxthreads=size, name=name)
        self._local = threading.local()
        self._all: list = []
        self._all_lock = threading.Lock()
        self._started = False

    def start(self) -> None:
        if not self._started:
            self._threads.start()
            self._started = True
            self._shutdown = self._reactor.addSystemEventTrigger("during", "shutdown", self.stop)

    def stop(self) -> None:
        if self._started:
            self._started = False
            self._threads.stop()
            with self._all_lock:
                for connection in self._all:
                    try:
                        connection.close()
                    except Exception:
                        pass
                self._all.clear()

    def run(self, work: Callable[..., Any], *args: Any) -> defer.Deferred:
        """Run ``work(connection, *args)`` in one transaction on a pool thread (committed after
        it, rolled back if it raises)."""
        return deferToThreadPool(self._reactor, self._threads, self._transaction, work, *args)

    def call(self, work: Callable[..., Any], *args: Any) -> defer.Deferred:
        """Run ``work(connection, *args)`` on a pool thread; ``work`` commits or rolls back itself."""
        return deferToThreadPool(self._reactor, self._threads, self._plain, work, *args)

    def drop(self, connection) -> None:
        """Close this thread's connection (from ``work``, after it broke it): the next call opens a new one."""
        try:
            connection.close()
        except Exception:
            pass
        if getattr(self._local, "connection", None) is connection:
            self._local.connection = None
        with self._all_lock:
            if connection in self._all:
                self._all.remove(connection)

    def _connection(self):
        connection = getattr(self._local, "connection", None)
        if connection is None or connection.closed:
            # Keepalives: a server that vanished (cable, crash) is noticed within seconds
            # instead of a call hanging until the kernel gives up.
            connection = psycopg2.connect(self._dsn, connect_timeout=5, keepalives=1, keepalives_idle=10,
                                          keepalives_interval=5, keepalives_count=3)
            connection.set_client_encoding("UTF8")
            self._local.connection = connection
            with self._all_lock:
                self._all.append(connection)
            if self._on_connect is not None:
                try:
                    self._on_connect(connection)
                except BaseException:
                    self.drop(connection)
                    raise
        return connection

    def _plain(self, work, *args):
        try:
            connection = self._connection()
        except UNAVAILABLE as error:
            raise _unavailable(error) from error
        try:
            return work(connection, *args)
        except UNAVAILABLE as error:
            self.drop(connection)
            raise _unavailable(error) from error

    def _transaction(self, work, *args):
        return self._plain(self._in_transaction, work, *args)

    def _in_transaction(self, connection, work, *args):
        try:
            result = work(connection, *args)
            connection.commit()
            return result
        except UNAVAILABLE:
            raise
        except BaseException:
            try:
                connection.rollback()
            except UNAVAILABLE:
                self.drop(connection)
            raise


def _unavailable(error: BaseException) -> StoreUnavailable:
    text = str(error).strip()
    return StoreUnavailable(text.splitlines()[0] if text else type(error).__name__)
