"""Coil tracking's tables in PostgreSQL (schema/094): its inputs read, its results kept.

Times cross this boundary as seconds since the epoch (``extract(epoch ...)`` and
``to_timestamp``); rows are written as ONE JSON parameter each statement (json_to_recordset),
which takes tens of thousands of rows in one round trip without COPY (txpostgres has none).
"""

from __future__ import annotations

import json

import orjson
from twisted.internet import defer
from zope.interface import implementer

from ccl.domain.events import EVENTS_CHANNEL as EVENTS
from ccl.adapters.storage.defect_keys import DEFECT_NEAR_RECEIPT
from ccl.adapters.storage.postgres import as_store_unavailable, notify_sql
from ccl.domain.tracking.model import MODEL_VERSION
from ccl.domain.tracking.records import Detection, Heartbeat, LineData, Placement, Telegram
from ccl.ports.tracking import ITrackingReads, ITrackingStore

#: Telegrams received up to this long after their event still count (late ones, see times.py).
LATE_MARGIN_S = 3600.0
_TABLES = {"tc_4001_cut": "4001", "tc_4002_wpd": "4002", "tc_4003_speed": "4003"}
_VALUES = {"tc_4001_cut": "coil_number, NULL::int, cut_mode, winding_length",
           "tc_4002_wpd": "coil_number, NULL::int, NULL::int, NULL::int",
           "tc_4003_speed": "NULL::text, line_speed, NULL::int, NULL::int"}
_EPOCH = "extract(epoch FROM {})::float8"


def _telegram_sql(table: str, where: str, suffix: str = "") -> str:
    return (f"SELECT id, {_EPOCH.format('sent_at')}, {_EPOCH.format('received_at')}, {_VALUES[table]}"
            f" FROM {table} WHERE {where} {suffix}")


def _telegrams(rows) -> tuple[Telegram, ...]:
    return tuple(Telegram(id=r[0], sent_at=r[1], received_at=r[2], coil_number=r[3], line_speed=r[4],
                          cut_mode=r[5], winding_length=r[6]) for r in rows)


_DETECTION_COLUMNS = {
    # A defect stamped with its receipt (the box sent no detection_time, schema/120): no box stamp.
    "defect": ("SELECT id, camera_id, CASE WHEN detection_time_source = 'received' THEN NULL ELSE "
               + _EPOCH.format("detection_time") + " END, " + _EPOCH.format("received_at")
               + ", coil_number FROM defect_detections"),
    # An image without the box's captured_at was stamped with its receipt time: no box stamp.
    "image": ("SELECT id, camera_id, CASE WHEN captured_at = received_at THEN NULL ELSE "
              + _EPOCH.format("captured_at") + " END, " + _EPOCH.format("received_at")
              + ", coil_number FROM images"),
}
_DETECTION_TIME = {"defect": "detection_time", "image": "captured_at"}


def _detections(kind: str, rows) -> list[Detection]:
    return [Detection(kind, r[0], r[1], r[2], r[3], r[4]) for r in rows]


_PLACEMENT_FIELDS = ("id", "camera_id", "surface", "detected_at", "time_source", "status", "tracked_coil", "metre",
                     "uncertainty_m", "in_weld_zone", "box_coil", "coil_disagrees", "exit_coil", "exit_piece",
                     "exit_metre", "exit_scrap", "provisional")
_PLACEMENT_TYPES = ("bigint", "text", "text", "float8", "text", "text", "text", "float8", "float8", "boolean", "text",
                    "boolean", "text", "int", "float8", "boolean", "boolean")
_TARGET = {"defect": ("tracking_defects", "defect_id", "defect_detections"),
           "image": ("tracking_images", "image_id", "images")}


def _save_sql(kind: str) -> str:
    table, key, source = _TARGET[kind]
    columns = [key if f == "id" else f for f in _PLACEMENT_FIELDS]
    record = ", ".join(f"{f} {t}" for f, t in zip(_PLACEMENT_FIELDS, _PLACEMENT_TYPES))
    values = ", ".join("to_timestamp(r.detected_at)" if f == "detected_at" else f"r.{f}" for f in _PLACEMENT_FIELDS)
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns[1:] + ["model_version", "computed_at"])
    # Joined with the source rows: a defect deleted meanwhile is skipped, not a failed statement.
    if kind == "defect":
        return (f"INSERT INTO {table} ({', '.join(columns)}, defect_received_at, model_version, computed_at)"
                f" SELECT {values}, s.received_at, {MODEL_VERSION}, now()"
                f" FROM json_to_recordset(%s::json) AS r ({record}, received_at float8)"
                f" {DEFECT_NEAR_RECEIPT.format(id='r.id', epoch='r.received_at')}"
                f" ON CONFLICT ({key}) DO UPDATE SET {updates}")
    return (f"INSERT INTO {table} ({', '.join(columns)}, model_version, computed_at)"
            f" SELECT {values}, {MODEL_VERSION}, now() FROM json_to_recordset(%s::json) AS r ({record})"
            f" JOIN {source} s ON s.id = r.id"
            f" ON CONFLICT ({key}) DO UPDATE SET {updates}")


_SAVE = {kind: _save_sql(kind) for kind in _TARGET}


def _placement_rows(kind: str, placements) -> list[dict]:
    fields = (*_PLACEMENT_FIELDS, "received_at") if kind == "defect" else _PLACEMENT_FIELDS
    return [{f: getattr(p, f) for f in fields} for p in placements if p.kind == kind]


def _read_placement_sql(kind: str) -> str:
    table, key, _source = _TARGET[kind]
    columns = [f"{_EPOCH.format('detected_at')}" if f == "detected_at" else (key if f == "id" else f)
               for f in _PLACEMENT_FIELDS]
    received = _EPOCH.format("defect_received_at") if kind == "defect" else "NULL::float8"
    return f"SELECT {', '.join(columns)}, {received} FROM {table} WHERE {key} = ANY(%s)"


_READ_PLACEMENTS = {kind: _read_placement_sql(kind) for kind in _TARGET}

_COIL_SQL = """
INSERT INTO tracking_coils (tracked_coil, coil_number, head_wpd_at, tail_wpd_at, head_at_camera, tail_at_camera,
    head_at_shear, tail_at_shear, length_m, length_uncertainty_m, inspected_m, mes_length_m, length_disagrees,
    schedule_present, wpd_seen, speed_gap_free, cut_seen, coverage, completeness, head_crop_m, tail_crop_m,
    model_version, computed_at)
SELECT r.tracked_coil, r.coil_number, to_timestamp(r.head_wpd_at), to_timestamp(r.tail_wpd_at), r.head_at_camera,
    r.tail_at_camera, to_timestamp(r.head_at_shear), to_timestamp(r.tail_at_shear), r.length_m,
    r.length_uncertainty_m, r.inspected_m, r.mes_length_m, r.length_disagrees, r.schedule_present, r.wpd_seen,
    r.speed_gap_free, r.cut_seen, r.coverage, r.completeness, r.head_crop_m, r.tail_crop_m, %(version)s, now()
FROM json_to_recordset(%(rows)s::json) AS r (tracked_coil text, coil_number text, head_wpd_at float8,
    tail_wpd_at float8, head_at_camera jsonb, tail_at_camera jsonb, head_at_shear float8, tail_at_shear float8,
    length_m float8, length_uncertainty_m float8, inspected_m jsonb, mes_length_m int, length_disagrees boolean,
    schedule_present boolean, wpd_seen boolean, speed_gap_free boolean, cut_seen boolean, coverage jsonb,
    completeness text, head_crop_m float8, tail_crop_m float8)
ON CONFLICT (tracked_coil) DO UPDATE SET coil_number = excluded.coil_number, head_wpd_at = excluded.head_wpd_at,
    tail_wpd_at = excluded.tail_wpd_at, head_at_camera = excluded.head_at_camera,
    tail_at_camera = excluded.tail_at_camera, head_at_shear = excluded.head_at_shear,
    tail_at_shear = excluded.tail_at_shear, length_m = excluded.length_m,
    length_uncertainty_m = excluded.length_uncertainty_m, inspected_m = excluded.inspected_m,
    mes_length_m = excluded.mes_length_m, length_disagrees = excluded.length_disagrees,
    schedule_present = excluded.schedule_present, wpd_seen = excluded.wpd_seen,
    speed_gap_free = excluded.speed_gap_free, cut_seen = excluded.cut_seen, coverage = excluded.coverage,
    completeness = excluded.completeness, head_crop_m = excluded.head_crop_m, tail_crop_m = excluded.tail_crop_m,
    model_version = excluded.model_version, computed_at = excluded.computed_at"""

_EXIT_SQL = """
INSERT INTO tracking_exit_coils (tracked_coil, piece, coil_number, start_m, end_m, cut_at, cut_mode, winding_length,
    scrap, length_disagrees)
SELECT r.tracked_coil, r.piece, r.coil_number, r.start_m, r.end_m, to_timestamp(r.cut_at), r.cut_mode,
    r.winding_length, r.scrap, r.length_disagrees
FROM json_to_recordset(%s::json) AS r (tracked_coil text, piece int, coil_number text, start_m float8, end_m float8,
    cut_at float8, cut_mode int, winding_length int, scrap boolean, length_disagrees boolean)"""

_DELAY_SQL = """
INSERT INTO tracking_delays (kind, started_at, ended_at, duration_s, tracked_coil, metre, computed_at)
SELECT r.kind, to_timestamp(r.start), to_timestamp(r.end_), r.duration_s, r.tracked_coil, r.metre, now()
FROM json_to_recordset(%s::json) AS r (kind text, start float8, end_ float8, duration_s float8, tracked_coil text,
    metre float8)
ON CONFLICT (started_at, kind) DO UPDATE SET ended_at = excluded.ended_at, duration_s = excluded.duration_s,
    tracked_coil = excluded.tracked_coil, metre = excluded.metre, computed_at = excluded.computed_at"""


def _coil_row(c) -> dict:
    return {"tracked_coil": c.tracked_coil, "coil_number": c.coil_number, "head_wpd_at": c.head_wpd_at,
            "tail_wpd_at": c.tail_wpd_at, "head_at_camera": c.head_at_camera, "tail_at_camera": c.tail_at_camera,
            "head_at_shear": c.head_at_shear, "tail_at_shear": c.tail_at_shear, "length_m": c.length_m,
            "length_uncertainty_m": c.length_uncertainty_m, "inspected_m": c.inspected_m,
            "mes_length_m": c.mes_length_m, "length_disagrees": c.length_disagrees,
            "schedule_present": c.schedule_present, "wpd_seen": c.wpd_seen, "speed_gap_free": c.speed_gap_free,
            "cut_seen": c.cut_seen, "coverage": c.coverage, "completeness": c.completeness,
            "head_crop_m": c.head_crop_m, "tail_crop_m": c.tail_crop_m}


@implementer(ITrackingStore)
class TrackingRecords:
    def __init__(self, db, camera_ids=(), max_clock_offset_s: float = 0.0):
        self._db = db
        self._cameras = list(camera_ids)
        self._margin = abs(max_clock_offset_s) + 1.0

    @classmethod
    def for_settings(cls, db, settings) -> "TrackingRecords":
        """Reading the configured cameras' heartbeats and detections (widened by their clock offsets)."""
        return cls(db, [c.camera_id for c in settings.cameras],
                   max((abs(c.clock_offset_s) for c in settings.cameras), default=0.0))

    def _query(self, sql, params=()):
        return self._db.runQuery(sql, params).addErrback(as_store_unavailable)

    @defer.inlineCallbacks
    def line_data(self, since: float, until: float | None):
        rows = yield self._query(
            "SELECT (SELECT extract(epoch FROM received_at)::float8 FROM tc_4002_wpd"
            "         WHERE received_at < to_timestamp(%(since)s) ORDER BY received_at DESC LIMIT 1 OFFSET 1),"
            "       (SELECT extract(epoch FROM received_at)::float8 FROM tc_4002_wpd"
            "         WHERE received_at > to_timestamp(%(until)s) ORDER BY received_at LIMIT 1 OFFSET 1)",
            {"since": since, "until": until if until is not None else since})
        first, last = rows[0]
        first = since if first is None else first
        start = first - LATE_MARGIN_S
        end = None if until is None or last is None else last + LATE_MARGIN_S
        window = "received_at >= to_timestamp(%(start)s)" + (
            "" if end is None else " AND received_at <= to_timestamp(%(end)s)")
        params = {"start": start, "end": end}
        speeds = yield self._query(_telegram_sql("tc_4003_speed", window), params)
        welds = yield self._query(_telegram_sql("tc_4002_wpd", window), params)
        cuts = yield self._query(
            f"({_telegram_sql('tc_4001_cut', 'received_at < to_timestamp(%(start)s)', 'ORDER BY received_at DESC LIMIT 1')})"
            f" UNION ALL ({_telegram_sql('tc_4001_cut', window)})", params)
        numbers = sorted({r[3] for r in welds})
        schedules = yield self._query(
            "SELECT DISTINCT ON (coil_number) coil_number, length_value FROM tc_4000_schedule"
            " WHERE coil_number = ANY(%s) ORDER BY coil_number, received_at DESC, id DESC", (numbers,))
        beats = yield self._query(
            f"SELECT camera_id, {_EPOCH.format('period_start')}, {_EPOCH.format('period_end')}, frames_inspected,"
            " frames_expected FROM inspection_heartbeats WHERE camera_id = ANY(%(cameras)s)"
            " AND period_end >= to_timestamp(%(start)s)"
            + ("" if end is None else " AND period_start <= to_timestamp(%(end)s)"),
            {**params, "cameras": self._cameras})
        data = LineData(speeds=_telegrams(speeds), welds=_telegrams(welds), cuts=_telegrams(cuts),
                        schedules={n: length for n, length in schedules},
                        heartbeats=tuple(Heartbeat(*r) for r in beats))
        return data, first

    @defer.inlineCallbacks
    def detections(self, since: float, until: float | None):
        found: list[Detection] = []
        for kind, select in _DETECTION_COLUMNS.items():
            column = _DETECTION_TIME[kind]
            where = f"{column} >= to_timestamp(%(since)s)" + (
                "" if until is None else f" AND {column} < to_timestamp(%(until)s)")
            rows = yield self._query(f"{select} WHERE {where}",
                                     {"since": since - self._margin,
                                      "until": None if until is None else until + self._margin})
            found += _detections(kind, rows)
        return found

    @defer.inlineCallbacks
    def detections_by_id(self, defect_ids, image_ids):
        found: list[Detection] = []
        for kind, ids in (("defect", defect_ids), ("image", image_ids)):
            if ids:
                rows = yield self._query(f"{_DETECTION_COLUMNS[kind]} WHERE id = ANY(%s)", (list(ids),))
                found += _detections(kind, rows)
        return found

    def telegrams_by_id(self, table: str, ids):
        if table not in _TABLES:
            raise ValueError(f"not a tracked telegram table: {table}")
        return self._query(_telegram_sql(table, "id = ANY(%s)"), (list(ids),)).addCallback(_telegrams)

    @defer.inlineCallbacks
    def placements(self, keys):
        found: dict[tuple[str, int], Placement] = {}
        for kind in _TARGET:
            ids = [i for k, i in keys if k == kind]
            if not ids:
                continue
            rows = yield self._query(_READ_PLACEMENTS[kind], (ids,))
            for row in rows:
                values = dict(zip((*_PLACEMENT_FIELDS, "received_at"), row))
                found[(kind, values["id"])] = Placement(kind=kind, **values)
        return found

    @defer.inlineCallbacks
    def save_placements(self, placements):
        for kind in _TARGET:
            rows = _placement_rows(kind, placements)
            if rows:
                # One event per statement for the UI (which coils changed), not one per row.
                coils = sorted({p.tracked_coil for p in placements if p.kind == kind and p.tracked_coil})[:50]
                event = json.dumps({"table": _TARGET[kind][0], "count": len(rows), "tracked_coils": coils})
                yield self._db.runOperation(f"{_SAVE[kind]}; {notify_sql(EVENTS)}", (orjson.dumps(rows).decode(), event)
                                            ).addErrback(as_store_unavailable)

    def save_progress(self, tracked_coil: str, inspected_m: dict):
        event = json.dumps({"table": "tracking_coils", "tracked_coil": tracked_coil, "inspected_m": inspected_m})
        return self._db.runOperation(
            "UPDATE tracking_coils SET inspected_m = %s, computed_at = now() WHERE tracked_coil = %s; "
            + notify_sql(EVENTS), (json.dumps(inspected_m), tracked_coil, event)).addErrback(as_store_unavailable)

    def save_coils(self, coils, delays, *, coils_between=None, delays_between=None):
        coil_rows = orjson.dumps([_coil_row(c) for c in coils]).decode()
        exits = orjson.dumps([{"tracked_coil": e.tracked_coil, "piece": e.piece, "coil_number": e.coil_number,
                               "start_m": e.start_m, "end_m": e.end_m, "cut_at": e.cut_at, "cut_mode": e.cut_mode,
                               "winding_length": e.winding_length, "scrap": e.scrap,
                               "length_disagrees": e.length_disagrees}
                              for c in coils for e in c.exit_coils]).decode()
        names = [c.tracked_coil for c in coils]
        delay_rows = orjson.dumps([{"kind": d.kind, "start": d.start, "end_": d.end, "duration_s": d.duration_s,
                                    "tracked_coil": d.tracked_coil, "metre": d.metre} for d in delays]).decode()

        @defer.inlineCallbacks
        def write(cursor):  # txpostgres: each execute is a Deferred
            if coils_between is not None:
                # a coil of the period that is no more (a repeated weld dropped, a re-run renamed)
                since, until = coils_between
                yield cursor.execute(
                    "DELETE FROM tracking_coils WHERE head_wpd_at >= to_timestamp(%s)"
                    " AND (%s::float8 IS NULL OR head_wpd_at < to_timestamp(%s)) AND NOT tracked_coil = ANY(%s)",
                    (since, until, until, names))
            if names:
                yield cursor.execute(_COIL_SQL, {"rows": coil_rows, "version": MODEL_VERSION})
                yield cursor.execute("DELETE FROM tracking_exit_coils WHERE tracked_coil = ANY(%s)", (names,))
                yield cursor.execute(_EXIT_SQL, (exits,))
            if delays_between is not None:
                since, until = delays_between
                yield cursor.execute("DELETE FROM tracking_delays WHERE started_at >= to_timestamp(%s)"
                                     " AND (%s::float8 IS NULL OR started_at < to_timestamp(%s))", (since, until, until))
                yield cursor.execute(_DELAY_SQL, (delay_rows,))

        return self._db.runInteraction(write).addErrback(as_store_unavailable)

    def record_run(self, kind, since, until, report):
        return self._db.runOperation(
            "INSERT INTO tracking_runs (kind, period_from, period_to, report) VALUES"
            " (%s, to_timestamp(%s), to_timestamp(%s), %s)",
            (kind, since, until, json.dumps(report, ensure_ascii=False))).addErrback(as_store_unavailable)


@implementer(ITrackingReads)
class TrackingReads:
    """The UI's reads (each one statement, JSON built by PostgreSQL)."""

    def __init__(self, db):
        self._db = db

    def _json(self, sql, params):
        return self._db.runQuery(sql, params).addErrback(as_store_unavailable).addCallback(
            lambda rows: json.loads(rows[0][0]) if rows and rows[0][0] is not None else None)

    def coil(self, coil_number):
        return self._json(
            "SELECT row_to_json(x)::text FROM (SELECT c.*, coalesce((SELECT json_agg(e ORDER BY e.piece)"
            " FROM tracking_exit_coils e WHERE e.tracked_coil = c.tracked_coil), '[]') AS exit_coils"
            " FROM tracking_coils c WHERE c.coil_number = %s ORDER BY c.head_wpd_at DESC LIMIT 1) x", (coil_number,))

    def coil_map(self, tracked_coil, *, kind="defect"):
        table, key, _source = _TARGET[kind]
        return self._json(
            f"SELECT coalesce(json_agg(t ORDER BY t.metre, t.{key}), '[]')::text FROM {table} t"
            f" WHERE t.tracked_coil = %s", (tracked_coil,))

    def delays(self, since, until):
        return self._json(
            "SELECT coalesce(json_agg(d ORDER BY d.started_at), '[]')::text FROM tracking_delays d"
            " WHERE d.started_at >= to_timestamp(%s) AND d.started_at < to_timestamp(%s)", (since, until))

    def disagreements(self, since, until):
        return self._json(
            "SELECT coalesce(json_agg(t ORDER BY t.detected_at), '[]')::text FROM tracking_defects t"
            " WHERE t.coil_disagrees AND t.detected_at >= to_timestamp(%s) AND t.detected_at < to_timestamp(%s)",
            (since, until))
