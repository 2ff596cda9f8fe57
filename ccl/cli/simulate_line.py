"""ccl simulate line: play a run of the whole line (MES telegrams and the Jetson boxes) with its truth.

See ccl/domain/line_simulation.py (the run) and ccl/adapters/line_simulator (the playback).
The line's distances come from the server's ``[tracking]`` settings unless given here, so the
simulator's physics and the server's tracking agree on where the cameras and the shear are.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone

from ccl.cli.simulate_gokiwon import non_negative
from ccl.cli.simulate_mes import host_port, positive

def camera_value(text: str) -> tuple[str, float]:
    camera, _, value = text.partition("=")
    try:
        return camera.strip(), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not CAMERA=NUMBER") from None


def camera_gap(text: str) -> tuple[str, float, float]:
    parts = text.split(":")
    try:
        camera, begin, end = parts[0], float(parts[1]), float(parts[2])
    except (IndexError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not CAMERA:FROM:TO (seconds of the run)") from None
    if len(parts) != 3 or not 0 <= begin < end:
        raise argparse.ArgumentTypeError(f"{text!r} is not CAMERA:FROM:TO with FROM < TO")
    return camera, begin, end


def moment(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 date and time") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs its offset, e.g. 2026-03-01T10:00:00+09:00")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    where = parser.add_argument_group("where to (default: this machine's configured ports)")
    where.add_argument("--mes", type=host_port, metavar="HOST:PORT", help="the MES listener (ccl-mes)")
    where.add_argument("--images", metavar="URL", help="ccl-images, e.g. http://127.0.0.1:8081")
    where.add_argument("--defects", metavar="URL", help="ccl-defects, e.g. http://127.0.0.1:8082")
    where.add_argument("--token-file", metavar="FILE",
                       help="file holding the boxes' bearer token (from `ccl ingest-token create`);"
                            " without it the address must be on [ingest] allow")
    where.add_argument("--no-heartbeats", action="store_true", help="send no POST /inspection/heartbeat")
    clock = parser.add_argument_group("time")
    clock.add_argument("--start", type=moment, help="calendar time of the run's start (default: now)")
    clock.add_argument("--speedup", type=positive(float), default=1.0,
                       help="play this many times faster than real time (default 1); the messages keep the run's clock")
    run = parser.add_argument_group("the run")
    run.add_argument("--seed", type=int, default=1)
    run.add_argument("--coils", type=positive(int), default=3, help="coils with defects (default 3)")
    run.add_argument("--coil-length", type=positive(float), default=300.0, help="mean coil length, m (default 300)")
    run.add_argument("--speed", type=positive(float), default=120.0, help="cruising line speed, m/min (default 120)")
    run.add_argument("--ramp", type=positive(float), default=10.0, help="speed change, m/min per s (default 10)")
    run.add_argument("--stops", type=int, default=1, help="line stops in the run (default 1)")
    run.add_argument("--stop-seconds", type=positive(float), default=20.0)
    run.add_argument("--defects-per-coil", type=int, default=6)
    run.add_argument("--split-every", type=int, default=2, metavar="N",
                     help="cut every N-th coil into pieces at the shear (0: never; default 2)")
    run.add_argument("--split-pieces", type=positive(int), default=2, metavar="K",
                     help="into how many pieces such a coil is cut (default 2)")
    run.add_argument("--cameras", help="camera ids, comma-separated (default: [tracking] cameras)")
    run.add_argument("--heartbeat-every", type=non_negative(float), default=10.0, help="seconds (0: none)")
    run.add_argument("--batch-every", type=positive(float), default=5.0, help="seconds a box collects defects")
    line = parser.add_argument_group("the line (default: the [tracking] settings)")
    line.add_argument("--wpd-to-camera", type=non_negative(float), metavar="M")
    line.add_argument("--camera-to-shear", type=non_negative(float), metavar="M")
    line.add_argument("--camera-offset", type=camera_value, action="append", default=[], metavar="CAMERA=M",
                      help="a camera's metres beyond wpd_to_camera_m (repeat per camera)")
    faults = parser.add_argument_group("faults of the boxes")
    faults.add_argument("--clock-offset", type=camera_value, action="append", default=[], metavar="CAMERA=S",
                        help="that box's clock is wrong by S seconds (its stamps minus the truth)")
    faults.add_argument("--box-coil-lag", type=non_negative(float), default=0.0, metavar="M",
                        help="the boxes learn of a new coil M metres after its weld: the first M metres"
                             " of a coil are reported with the previous coil's number")
    faults.add_argument("--camera-gap", type=camera_gap, action="append", default=[], metavar="CAMERA:FROM:TO",
                        help="that camera saw nothing between these seconds of the run")
    parser.add_argument("--truth", metavar="FILE", help="write the truth as JSON lines (coils, stops, every defect)")
    parser.add_argument("--plan-only", action="store_true", help="write the truth and a summary; send nothing")
    parser.add_argument("--timeout", type=positive(float), default=10.0, help="seconds to wait for the last replies")
    parser.add_argument("--layout", help="telegram layout file (default: [mes] layout)")


def build_plan(args: argparse.Namespace, config):
    """The run to play: the line as the server's ``[tracking]`` settings describe it (cameras,
    distances, camera offsets), overridden by the options."""
    from ccl.domain.line_simulation import LineGeometry, RunPlan
    from ccl.domain.tracking.settings import TrackingSettings

    line = TrackingSettings.from_config(config)
    cameras = (tuple(c.strip() for c in args.cameras.split(",") if c.strip()) if args.cameras
               else tuple(c.camera_id for c in line.cameras))
    unknown = {c for c, _ in args.clock_offset + args.camera_offset} | {c for c, _, _ in args.camera_gap}
    if not cameras or unknown - set(cameras):
        raise ValueError(f"cameras {sorted(unknown - set(cameras))} are not among the cameras {', '.join(cameras)}")
    offsets = {c.camera_id: c.offset_m for c in line.cameras if c.camera_id in cameras}
    offsets.update(args.camera_offset)
    geometry = LineGeometry(line.wpd_to_camera_m if args.wpd_to_camera is None else args.wpd_to_camera,
                            line.camera_to_shear_m if args.camera_to_shear is None else args.camera_to_shear,
                            {camera: offsets.get(camera, 0.0) for camera in cameras})
    start = args.start or datetime.now(timezone.utc)
    return RunPlan(start=start, geometry=geometry, seed=args.seed, coils=args.coils, coil_length_m=args.coil_length,
                   speed_mpm=args.speed, ramp_mpm_per_s=args.ramp, stops=max(args.stops, 0), stop_s=args.stop_seconds,
                   defects_per_coil=max(args.defects_per_coil, 0), split_every=max(args.split_every, 0),
                   split_pieces=args.split_pieces,
                   cameras=cameras, clock_offsets_s=dict(args.clock_offset), box_coil_lag_m=args.box_coil_lag,
                   heartbeat_every_s=args.heartbeat_every, camera_gaps=tuple(args.camera_gap),
                   batch_every_s=args.batch_every)


def run(args: argparse.Namespace) -> int:
    from twisted.internet import defer, error, task

    from ccl.adapters.line_simulator import HttpTally, Targets, play, report
    from ccl.adapters.mes.simulate_mes import Tally
    from ccl.adapters.mes.simulate_mes import report as mes_report
    from ccl.adapters.tls import ca_file
    from ccl.config import ConfigError, load_config
    from ccl.domain.line_simulation import plan_run
    from ccl.domain.telegrams import LayoutError, load_layouts
    from ccl.orchestrator.services import listener

    config = load_config()
    try:
        layouts = load_layouts(args.layout or config.get("mes", "layout") or None)
        plan = build_plan(args, config)
        token = None
        if args.token_file:
            with open(args.token_file, encoding="utf-8") as handle:
                token = handle.read().strip()
    except (LayoutError, ConfigError, ValueError, OSError) as problem:
        sys.stderr.write(f"ccl simulate line: {problem}\n")
        return 2
    the_run = plan_run(plan)
    if args.truth:
        with open(args.truth, "w", encoding="utf-8") as truth:
            for line in the_run.truth_lines():
                truth.write(json.dumps(line, ensure_ascii=False) + "\n")
    g = plan.geometry
    print(f"run from {plan.start.isoformat()}: {len(the_run.coils)} coils, {len(the_run.defects)} defects,"
          f" {the_run.duration_s:.0f} s; cameras {g.wpd_to_camera_m:g} m after the WPD"
          f" (offsets {', '.join(f'{c} {o:+g} m' for c, o in g.camera_offsets_m.items())}),"
          f" shear {g.camera_to_shear_m:g} m after them", flush=True)
    if args.plan_only:
        return 0
    targets = Targets(args.mes or ("127.0.0.1", listener(config, "mes", "listen").port),
                      (args.images or listener(config, "images", "listen").url()).rstrip("/"),
                      (args.defects or listener(config, "defects", "listen").url()).rstrip("/"),
                      token=token, heartbeats=not args.no_heartbeats, ca_file=ca_file(config))
    result = {"code": 1}
    mes_tally, http_tally = Tally(), HttpTally()

    def out(line: str) -> None:
        print(line, flush=True)

    def interrupted():
        if "done" not in result:
            out("interrupted")
            result["code"] = report(mes_tally, http_tally, out, mes_report)

    @defer.inlineCallbacks
    def main(reactor):
        reactor.addSystemEventTrigger("before", "shutdown", interrupted)
        try:
            yield play(reactor, the_run, layouts, targets, speedup=args.speedup, timeout=args.timeout, out=out,
                       line_code=config.get("mes", "line_code"), mes_tally=mes_tally, http_tally=http_tally)
        except error.ConnectError as problem:
            sys.stderr.write(f"ccl simulate line: cannot connect to the MES listener"
                             f" {targets.mes[0]}:{targets.mes[1]}: {problem}\n")
            result.update(code=2, done=True)
            return
        result["done"] = True
        result["code"] = report(mes_tally, http_tally, out, mes_report)

    try:
        task.react(main)
    except SystemExit:
        pass
    return result["code"]
