"""ccl simulate gokiwon: play the 고기원 server (see ccl/adapters/gokiwon/simulator.py).

Listens on the three forwarding ports, ACKs what it gets to our ACK port, prints one line
per telegram (or appends JSON lines to --record FILE). Runs until Ctrl-C, or --count.
"""

from __future__ import annotations

import argparse
import json
import sys


def host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return host, int(port)


def rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a rate between 0 and 1")
    return value


def non_negative(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value < 0:
            raise argparse.ArgumentTypeError(f"{text!r} must not be negative")
        return value
    return parse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--schedule-port", type=non_negative(int), help="TC 4000 port (default [gokiwon] schedule_port)")
    parser.add_argument("--wpd-port", type=non_negative(int), help="TC 4002 port (default [gokiwon] wpd_port)")
    parser.add_argument("--speed-port", type=non_negative(int), help="TC 4003 port (default [gokiwon] speed_port)")
    parser.add_argument("--ack-to", type=host_port, metavar="HOST:PORT",
                        help="our ACK listener (default 127.0.0.1 and the port of [mes] ack_listen)")
    parser.add_argument("--ack-delay", type=non_negative(float), default=0.0, help="seconds before each answer")
    parser.add_argument("--nak-rate", type=rate, default=0.0, help="share of telegrams answered with a 4901 NAK")
    parser.add_argument("--nak-code", default="12", help="result code of the NAKs (default 12)")
    parser.add_argument("--drop-rate", type=rate, default=0.0,
                        help="share of telegrams taken as lost: not recorded, not answered")
    parser.add_argument("--disconnect-every", type=non_negative(int), default=0, metavar="N",
                        help="hang up a connection after every N telegrams on it (0: never)")
    parser.add_argument("--no-ack", action="store_true", help="answer nothing (a partner without ACKs)")
    parser.add_argument("--alive-interval", type=non_negative(float), default=30.0,
                        help="seconds between our 4999 alives on the ACK link (0: none)")
    parser.add_argument("--record", metavar="FILE", help="append one JSON line per telegram to FILE instead of printing")
    parser.add_argument("--count", type=non_negative(int), help="stop after N process telegrams")
    parser.add_argument("--seed", type=int, help="random seed for --nak-rate/--drop-rate")
    parser.add_argument("--layout", help="telegram layout file (default: [mes] layout)")


def run(args: argparse.Namespace) -> int:
    from twisted.internet import defer, reactor

    from ccl.adapters.gokiwon.simulator import GokiwonSimulator
    from ccl.config import load_config
    from ccl.domain.telegrams import LayoutError, load_layouts
    from ccl.orchestrator.services import endpoint_address

    config = load_config()
    try:
        layouts = load_layouts(args.layout or config.get("mes", "layout") or None)
    except LayoutError as problem:
        sys.stderr.write(f"ccl simulate gokiwon: layout: {problem}\n")
        return 2
    ports = {}
    for channel in layouts.channels:
        given = getattr(args, f"{channel}_port", None)
        ports[channel] = given if given is not None else config.get_int("gokiwon", f"{channel}_port", 1, 65535)
    ack_to = args.ack_to
    if ack_to is None:
        ack_to = ("127.0.0.1", endpoint_address(config, "mes", "ack_listen")[1])
    record = open(args.record, "a", encoding="utf-8") if args.record else None
    taken = 0
    status = {"code": 0}

    def received(item) -> None:
        nonlocal taken
        if record is not None:
            record.write(json.dumps({"at": item.at, "channel": item.channel, "tc_code": item.tc_code,
                                     "sequence_no": item.sequence_no, "duplicate": item.duplicate,
                                     "answer": item.answer, "raw_hex": item.raw.hex()}) + "\n")
            record.flush()
        else:
            again = " (again)" if item.duplicate else ""
            print(f"{item.channel:8} TC {item.tc_code} #{item.sequence_no:06d} {len(item.raw)} bytes: "
                  f"{item.answer}{again}", flush=True)
        if not item.answer.startswith("bad"):
            taken += 1
            if args.count and taken >= args.count and reactor.running:
                reactor.callLater(max(args.ack_delay, 0.0) + 0.5, reactor.stop)

    sim = GokiwonSimulator(reactor, layouts, ack_delay=args.ack_delay, nak_rate=args.nak_rate,
                           nak_code=args.nak_code, drop_rate=args.drop_rate, disconnect_every=args.disconnect_every,
                           alive_interval=args.alive_interval, line_code=config.get("mes", "line_code"),
                           on_received=received, seed=args.seed)
    sim.acking = not args.no_ack

    @defer.inlineCallbacks
    def start():
        try:
            bound = yield sim.listen(ports, host=args.host)
        except Exception as problem:
            sys.stderr.write(f"ccl simulate gokiwon: cannot listen: {problem}\n")
            status["code"] = 1
            reactor.stop()
            return
        listening = ", ".join(f"{channel} {args.host}:{port}" for channel, port in sorted(bound.items()))
        print(f"고기원 simulator listening: {listening}; answering to {ack_to[0]}:{ack_to[1]}", flush=True)
        sim.start_acks(ack_to)

    reactor.callWhenRunning(start)
    reactor.run()
    if record is not None:
        record.close()
    return status["code"]
