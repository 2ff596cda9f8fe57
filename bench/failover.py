"""Failover: the primary dies mid-stream, the standby is promoted; how long until the MES link
stores again and forwards again, and is anything lost?

    .venv/bin/python bench/failover.py [--rate 50] [--before 10] [--after 20] [--promote-after 0] [--lease]

Starts everything itself in throw-away directories: a primary (fsync on, as the plant's) and a
synchronous streaming standby made with `pg_basebackup -R` (ccl.adapters.storage.standby),
`twistd -n ccl-mes` as a real process on the multi-host DSN (target_session_attrs=read-write),
forwarding to an in-process 고기원 simulator, and an MES client sending TC 4003 (stored and
forwarded) at --rate per second. After --before seconds the primary is stopped with
`pg_ctl -m immediate` (its processes die at once, as in a crash); --promote-after seconds later
the standby is promoted (`pg_ctl promote`; the operator's reaction time is not in the figures
unless given here). Printed: the time from the death to the first telegram sent after it being
stored on the new primary, to the first delivery to 고기원 after it, and to the first delivery
recorded in the new primary's outbox; then, once everything is in, whether every ACKed
telegram is stored once and every one reached 고기원, in order, and how many came twice.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from twisted.internet import defer, endpoints, task  # noqa: E402

from ccl.adapters.gokiwon.simulator import GokiwonSimulator  # noqa: E402
from ccl.adapters.storage.localdb import LocalCluster, free_port  # noqa: E402
from ccl.adapters.storage.migrations import migrate  # noqa: E402
from ccl.adapters.storage.standby import (  # noqa: E402
    StandbySource, allow_standby, make_standby, multi_host_dsn, promote, set_synchronous,
)
from tests.support.mes import LAYOUTS, MesClient, speed  # noqa: E402

PASSWORD = "bench-replication-password"


def scalar(dsn: str, statement: str, params: tuple = ()):
    try:
        connection = psycopg2.connect(dsn, connect_timeout=2)
    except psycopg2.Error:
        return None
    try:
        with connection, connection.cursor() as cursor:
            cursor.execute(statement, params)
            return cursor.fetchone()[0]
    except psycopg2.Error:
        return None
    finally:
        connection.close()


@defer.inlineCallbacks
def main(reactor, args):
    work = Path(tempfile.mkdtemp(prefix="ccl-failover-"))
    os.chmod(work, 0o755)
    primary = LocalCluster(work / "primary", free_port())
    standby = LocalCluster(work / "standby", free_port())
    service = None
    try:
        primary.init(trust=True)
        primary.start()
        migrate(primary.superuser_dsn())
        allow_standby(primary, PASSWORD, network="127.0.0.1/32")
        make_standby(standby, StandbySource("127.0.0.1", primary.port, PASSWORD))
        set_synchronous(primary, "ccl_standby")
        dsn = multi_host_dsn([("127.0.0.1", primary.port), ("127.0.0.1", standby.port)],
                             user="postgres", dbname="postgres")
        new_primary = standby.superuser_dsn()

        sim = GokiwonSimulator(reactor, LAYOUTS, alive_interval=0)
        ports = yield sim.listen({"schedule": 0, "wpd": 0, "speed": 0})
        mes_port, ack_port, status_port = free_port(), free_port(), free_port()
        sim.start_acks(("127.0.0.1", ack_port))
        env = {k: v for k, v in os.environ.items() if not k.startswith("CCL_")}
        env.update(PYTHONPATH=str(ROOT), CCL_DATABASE_DSN=dsn, CCL_PATHS_VAR=str(work / "var"),
                   CCL_MES_LISTEN=f"tcp:{mes_port}:interface=127.0.0.1",
                   CCL_MES_ACK_LISTEN=f"tcp:{ack_port}:interface=127.0.0.1",
                   CCL_MES_STATUS_LISTEN=f"tcp:{status_port}:interface=127.0.0.1",
                   CCL_GOKIWON_HOST="127.0.0.1", CCL_GOKIWON_RETRY_INITIAL="0.1", CCL_GOKIWON_RETRY_MAX="0.5",
                   CCL_GOKIWON_LEASE="true" if args.lease else "false",
                   **{f"CCL_GOKIWON_{c.upper()}_PORT": str(p) for c, p in ports.items()})
        (work / "var").mkdir()
        log = open(work / "service.log", "wb")
        service = subprocess.Popen([sys.executable, "-c", "from twisted.scripts.twistd import run; run()", "-n",
                                    "--pidfile=", "--logfile=-", "ccl-mes"], env=env, stdout=log,
                                   stderr=subprocess.STDOUT, cwd=work / "var")
        client = None
        for _ in range(400):
            try:
                client = yield endpoints.connectProtocol(
                    endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", mes_port), MesClient())
                break
            except Exception:
                yield task.deferLater(reactor, 0.05, lambda: None)
        if client is None:
            raise SystemExit("ccl-mes did not start; see " + str(work / "service.log"))

        sent: list[bytes] = []
        sequence = 0

        def send_one():
            nonlocal sequence
            sequence += 1
            raw = speed(sequence, mpm=sequence % 500)
            sent.append(raw)
            client.transport.write(raw)

        sender = task.LoopingCall(send_one)
        sender.clock = reactor
        sender.start(1.0 / args.rate)
        yield task.deferLater(reactor, args.before, lambda: None)

        died_at = time.time()
        last_before = sequence
        primary.stop("immediate")
        death = time.time() - died_at
        yield task.deferLater(reactor, args.promote_after, lambda: None)
        promoting = time.time()
        promote(standby)
        promoted_at = time.time() - died_at
        promote_took = time.time() - promoting

        stored_at = forwarded_at = recorded_at = None
        deadline = time.time() + max(120.0, args.after * 3)
        stop_sending_at = time.time() + args.after
        while time.time() < deadline and None in (stored_at, forwarded_at, recorded_at):
            if sender.running and time.time() > stop_sending_at:
                sender.stop()
            now = time.time()
            if stored_at is None and (scalar(new_primary, "SELECT max(sequence_no) FROM tc_4003_speed") or 0) > last_before:
                stored_at = now - died_at
            if forwarded_at is None and any(r.sequence_no > last_before and r.tc_code == "4003" for r in sim.received):
                first = min(r.at for r in sim.received if r.sequence_no > last_before and r.tc_code == "4003")
                forwarded_at = first - died_at
            if recorded_at is None and (scalar(new_primary, "SELECT count(*) FROM forward_outbox WHERE state = 'delivered'"
                                               " AND sequence_no > %s", (last_before,)) or 0) > 0:
                recorded_at = now - died_at
            yield task.deferLater(reactor, 0.05, lambda: None)
        if sender.running:
            yield task.deferLater(reactor, max(0.0, stop_sending_at - time.time()), lambda: None)
            sender.stop()

        total = len(sent)
        for _ in range(1200):
            if (len(client.replies) >= total
                    and scalar(new_primary, "SELECT count(*) FROM forward_outbox WHERE state = 'delivered'") == total):
                break
            yield task.deferLater(reactor, 0.1, lambda: None)
        acked = sum(1 for r in client.replies if r.result_code == "00")
        stored = scalar(new_primary, "SELECT count(*) FROM tc_4003_speed")
        distinct = scalar(new_primary, "SELECT count(DISTINCT sequence_no) FROM tc_4003_speed")
        delivered = scalar(new_primary, "SELECT count(*) FROM forward_outbox WHERE state = 'delivered'")
        seen, order = set(), []
        for item in sim.received:
            if item.channel == "speed" and item.raw not in seen:
                seen.add(item.raw)
                order.append(item.raw)
        twice = sum(1 for r in sim.received if r.duplicate)

        def show(seconds):
            return "never" if seconds is None else f"{seconds:.2f} s"

        print(f"telegrams sent: {total} at {args.rate}/s; ACKed: {acked}; the primary died after #{last_before}")
        print(f"stopping the primary (pg_ctl -m immediate): {death:.2f} s; promotion started at "
              f"{args.promote_after:.1f} s, took {promote_took:.2f} s (done {promoted_at:.2f} s after the death)")
        print(f"death -> first later telegram stored on the new primary:   {show(stored_at)}")
        print(f"death -> first later telegram delivered to 고기원:          {show(forwarded_at)}")
        print(f"death -> first later delivery recorded on the new primary: {show(recorded_at)}")
        print(f"stored: {stored} rows, {distinct} distinct (sent {total}); outbox delivered: {delivered}")
        print(f"고기원 got every telegram once in order: {order == sent}; arrivals counted twice: {twice}")
        ok = (stored == distinct == total == acked == delivered and order == sent
              and stored_at is not None and stored_at < 30 and forwarded_at is not None and forwarded_at < 30)
        print("result: " + ("OK (< 30 s, nothing lost)" if ok else "NOT OK"))
        if not ok:
            raise SystemExit(1)
    finally:
        if service is not None:
            service.send_signal(signal.SIGTERM)
            try:
                service.wait(20)
            except subprocess.TimeoutExpired:
                service.kill()
        for cluster in (primary, standby):
            try:
                cluster.destroy()
            except Exception:
                pass
        if args.keep_log and (work / "service.log").exists():
            shutil.copy(work / "service.log", args.keep_log)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=50.0, help="telegrams per second")
    parser.add_argument("--before", type=float, default=10.0, help="seconds of traffic before the primary dies")
    parser.add_argument("--after", type=float, default=20.0, help="seconds of traffic after it")
    parser.add_argument("--promote-after", type=float, default=0.0, help="seconds from the death to the promotion")
    parser.add_argument("--lease", action="store_true",
                        help="[gokiwon] lease on (two plant servers): forwarding only from the outbox")
    parser.add_argument("--keep-log", help="copy the ccl-mes log here")
    arguments = parser.parse_args()
    task.react(main, [arguments])
