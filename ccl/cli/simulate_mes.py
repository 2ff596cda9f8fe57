"""ccl simulate mes --to HOST:PORT: play the Dongkuk MES (a production run) and check every reply."""

from __future__ import annotations

import argparse
import sys


def host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return host, int(port)


def positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text!r} must be above 0")
        return value
    return parse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--to", required=True, type=host_port, metavar="HOST:PORT",
                        help="the MES listener, e.g. 127.0.0.1:9304")
    parser.add_argument("--count", type=positive(int), help="stop after N process telegrams (default: forever)")
    parser.add_argument("--speedup", type=positive(float), default=1.0,
                        help="play the run this many times faster than real time (default 1)")
    parser.add_argument("--rate", type=positive(float), help="ignore the run's timing: N telegrams per second")
    parser.add_argument("--seed", type=int, default=1, help="which production run (default 1)")
    parser.add_argument("--timeout", type=positive(float), default=10.0,
                        help="seconds to wait for the last replies (default 10)")
    parser.add_argument("--layout", help="telegram layout file (default: [mes] layout)")
    parser.add_argument("--verbose", action="store_true", help="print every ACK")


def run(args: argparse.Namespace) -> int:
    from twisted.internet import defer, error, task

    from ccl.adapters.mes.simulate_mes import Tally, report, simulate
    from ccl.config import load_config
    from ccl.domain.telegrams import LayoutError, load_layouts

    try:
        layouts = load_layouts(args.layout or load_config().get("mes", "layout") or None)
    except LayoutError as problem:
        sys.stderr.write(f"ccl simulate mes: layout: {problem}\n")
        return 2
    host, port = args.to
    result = {"code": 1}

    def out(line: str) -> None:
        print(line, flush=True)

    tally = Tally()

    def interrupted():
        if "done" not in result:  # Ctrl-C in the middle of a run: still say how it went
            out("interrupted")
            result["code"] = report(tally, out)

    @defer.inlineCallbacks
    def main(reactor):
        reactor.addSystemEventTrigger("before", "shutdown", interrupted)
        try:
            yield simulate(reactor, layouts, host, port, count=args.count, speedup=args.speedup,
                           rate=args.rate, seed=args.seed, timeout=args.timeout, out=out,
                           verbose=args.verbose, tally=tally)
        except error.ConnectError as problem:
            sys.stderr.write(f"ccl simulate mes: cannot connect to {host}:{port}: {problem}\n")
            result["code"] = 2
            result["done"] = True
            return
        result["done"] = True
        result["code"] = report(tally, out)

    try:
        task.react(main)
    except SystemExit:
        pass
    return result["code"]
