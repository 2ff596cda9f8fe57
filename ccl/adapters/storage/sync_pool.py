"""Blocking psycopg2 connections on a thread pool of their own, for what txpostgres cannot do.

txpostgres has no COPY and no executemany; bulk inserts and multi-statement transactions that
go with file operations run here, one connection per thread, each call one transaction.
A connection that fails is dropped and the next call opens a fresh one.
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
    def __init__(self, reactor, dsn: str, size: int = 2, name: str = "db-sync"):
        self._reactor = reactor
        self._dsn = dsn
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
        """Run ``work(connection, *args)`` in one transaction on a pool thread. A database
        outage fails it with ``ports.StoreUnavailable`` (the next call opens a new connection)."""
        return deferToThreadPool(self._reactor, self._threads, self._transaction, work, *args)

    def _connection(self):
        connection = getattr(self._local, "connection", None)
        if connection is None or connection.closed:
            connection = psycopg2.connect(self._dsn, connect_timeout=5)
            self._local.connection = connection
            with self._all_lock:
                self._all.append(connection)
        return connection

    def _transaction(self, work, *args):
        try:
            connection = self._connection()
        except UNAVAILABLE as error:
            raise _unavailable(error) from error
        try:
            result = work(connection, *args)
            connection.commit()
            return result
        except UNAVAILABLE as error:
            self._drop(connection)
            raise _unavailable(error) from error
        except BaseException:
            try:
                connection.rollback()
            except UNAVAILABLE:
                self._drop(connection)
            raise

    def _drop(self, connection) -> None:
        try:
            connection.close()
        except Exception:
            pass
        self._local.connection = None
        with self._all_lock:
            if connection in self._all:
                self._all.remove(connection)


def _unavailable(error: BaseException) -> StoreUnavailable:
    return StoreUnavailable(str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__)
