"""Defects and AI model scores in PostgreSQL.

Two paths: a single defect is one statement on the txpostgres pool (insert, de-duplicate by
event_id and NOTIFY at once); a batch (or the defects of an image pair) is one transaction on
the blocking pool with COPY, the fastest way PostgreSQL takes many rows.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from json.encoder import encode_basestring_ascii as _quote
from typing import Any

import attrs
import orjson
from psycopg2 import errors as pg_errors
from twisted.internet import defer
from zope.interface import implementer

from ccl.adapters.storage.copy_text import NULL, copy_str
from ccl.adapters.storage.postgres import UNAVAILABLE, as_store_unavailable
from ccl.domain.events import EVENTS_CHANNEL as EVENTS
from ccl.domain.ingest.defects import SCORES, Defect, Performance, Thresholds
from ccl.domain.ingest.defects_fast import DefectRow, defect_row
from ccl.domain.ingest.images import name_from_path
from ccl.ports import BatchResult, IDefectRecords, UnknownModel

_COLUMNS = ("id", "event_id", "coil_number", "defect_type", "confidence_score", "severity", "needs_review",
            "defect_position_x", "defect_position_y", "defect_size_width", "defect_size_height",
            "defect_position_meter", "detection_time", "original_image_path", "labeled_image_path",
            "original_image_id", "labeled_image_id", "model_id", "camera_id", "batch_info", "detection_time_source")
_SINGLE_COLUMNS = _COLUMNS[1:]
#: Batches up to this size go as one INSERT; larger ones by COPY.
SMALL = 20
#: The event the live UI gets for each stored defect (built by PostgreSQL from the row ``ins``).
_EVENT_SQL = ("json_build_object('table', 'defect_detections', 'id', ins.id, 'coil_number', ins.coil_number,"
              " 'defect_type', ins.defect_type, 'severity', ins.severity, 'confidence_score', ins.confidence_score,"
              " 'defect_position_meter', ins.defect_position_meter, 'camera_id', ins.camera_id)::text")


class RawRow(str):
    """A stored row as PostgreSQL's JSON text: replies pass it on without decoding it."""


def event_text(row_id: int, d: Defect) -> str:
    """The ccl_events payload of a stored defect (what the live UI needs to draw it).

    Written out by hand: json.dumps of a dict costs several times more, and a 10,000-item
    batch makes 10,000 of them. Strings go through the json module's own escaping.
    """
    meter = "null" if d.defect_position_meter is None else repr(d.defect_position_meter)
    return (f'{{"table": "defect_detections", "id": {row_id}, "coil_number": {_quote(d.coil_number)},'
            f' "defect_type": {_quote(d.defect_type)}, "severity": "{d.severity}",'
            f' "confidence_score": {d.confidence_score!r}, "defect_position_meter": {meter},'
            f' "camera_id": {_quote(d.camera_id)}}}')


# Settings ----------------------------------------------------------------------------------

def load_thresholds(db):
    def build(rows):
        values = {key: value for key, value in rows}
        return Thresholds.from_settings(values.get("severity_thresholds"), values.get("review_threshold"))

    return db.runQuery("SELECT key, value FROM system_settings WHERE key IN ('severity_thresholds', 'review_threshold')"
                       ).addCallback(build)


# Single defects, written in groups -------------------------------------------------------

#: The columns of a grouped row and their SQL types: a DefectRow's fields, with the stored
#: image names (``oname``, ``lname``, looked up for the image ids) before model and camera.
_GROUP_COLUMN_TYPES = (
    ("event_id", "uuid"), ("coil_number", "text"), ("defect_type", "text"), ("confidence_score", "float8"),
    ("severity", "text"), ("needs_review", "boolean"), ("defect_position_x", "int"), ("defect_position_y", "int"),
    ("defect_size_width", "int"), ("defect_size_height", "int"), ("defect_position_meter", "float8"),
    ("detection_time", "timestamptz"), ("original_image_path", "text"), ("labeled_image_path", "text"),
    ("oname", "text"), ("lname", "text"), ("model_id", "int"), ("camera_id", "text"),
    ("detection_time_source", "text"))
_GROUP_COLUMNS = tuple(name for name, _type in _GROUP_COLUMN_TYPES)
_GROUP_TYPES = tuple(kind for _name, kind in _GROUP_COLUMN_TYPES)
assert [c for c in _GROUP_COLUMNS if c not in ("oname", "lname")] == list(DefectRow._fields)

#: One statement for any number of defects: ids, event ids, rows, image links and events. The
#: rows come as ONE parameter, a JSON array made by orjson: psycopg2 adapting ~20 parameters per
#: row was a seventh of the service's CPU at 1,000 posts a second. A defect whose event_id is
#: already in defect_event_ids (schema/123: the partitioned table cannot hold a unique event_id)
#: is not stored. Returns (ord, row as JSON).
_GROUP_SQL = f"""
WITH n AS MATERIALIZED (
    SELECT nextval('defect_detections_id_seq') AS id, v.*
    FROM json_to_recordset(%s::json) AS v (ord int, {", ".join(f"{c} {t}" for c, t in zip(_GROUP_COLUMNS, _GROUP_TYPES))})),
fresh AS (
    INSERT INTO defect_event_ids (event_id, defect_id)
    SELECT n.event_id, n.id FROM n WHERE n.event_id IS NOT NULL
    ON CONFLICT (event_id) DO NOTHING
    RETURNING defect_id),
ins AS (
    INSERT INTO defect_detections (id, {", ".join(_SINGLE_COLUMNS)})
    SELECT n.id, n.event_id, n.coil_number, n.defect_type, n.confidence_score, n.severity,
           n.needs_review, n.defect_position_x, n.defect_position_y,
           n.defect_size_width, n.defect_size_height, n.defect_position_meter,
           n.detection_time, n.original_image_path, n.labeled_image_path,
           (SELECT i.id FROM images i WHERE i.kind = 'original' AND i.filename = n.oname),
           (SELECT i.id FROM images i WHERE i.kind = 'labeled' AND i.filename = n.lname),
           n.model_id, n.camera_id, NULL::jsonb, n.detection_time_source
    FROM n WHERE n.event_id IS NULL OR n.id IN (SELECT defect_id FROM fresh) ORDER BY n.ord
    RETURNING *)
SELECT n.ord, row_to_json(ins)::text, pg_notify('{EVENTS}', {_EVENT_SQL})
FROM ins JOIN n ON n.id = ins.id"""

_GROUP_KEYS = ("ord", *_GROUP_COLUMNS)


def _params(d: Defect) -> tuple:
    return (d.event_id, d.coil_number, d.defect_type, d.confidence_score, d.severity, d.needs_review,
            d.defect_position_x, d.defect_position_y, d.defect_size_width, d.defect_size_height,
            d.defect_position_meter, d.detection_time, d.original_image_path, d.labeled_image_path,
            name_from_path(d.original_image_path), name_from_path(d.labeled_image_path), d.model_id, d.camera_id,
            d.detection_time_source)


def _group_json(group) -> str:
    """The rows of a group as the JSON array _GROUP_SQL reads (validated values: finite
    numbers, ints in range, aware datetimes, which orjson writes as RFC 3339)."""
    return orjson.dumps([dict(zip(_GROUP_KEYS, (index, *_params(d)))) for index, (d, _w) in enumerate(group)]).decode()


#: The stored row of an event id (a repeat is answered with it).
STORED_EVENT_SQL = ("SELECT row_to_json(d)::text FROM defect_detections d"
                    " WHERE d.id = (SELECT defect_id FROM defect_event_ids WHERE event_id = %s)")


class SingleWriter:
    """Stores single defects, many requests to one transaction (group commit).

    Each POST /defect/single waits for its own row to be committed. The posts the reactor
    reads in one pass over its sockets go as one statement, sent at the end of that pass (a
    zero-delay call: no timer, no added wait); while statements are being committed (an fsync
    of the WAL, milliseconds), the posts that arrive meanwhile gather for the next. One fsync
    for many defects. Fires ``(row, created)``; a stored event_id gives the stored row.
    """

    def __init__(self, db, *, parallel: int = 1, max_group: int = 500, clock=None):
        if clock is None:
            from twisted.internet import reactor as clock
        self._db = db
        self._clock = clock
        self._parallel = parallel
        self._max_group = max_group
        self._pending: list[tuple[Defect, defer.Deferred]] = []
        self._in_flight = 0
        self._tick = None
        self._known_models: set[int] = set()

    def submit(self, defect: Defect) -> defer.Deferred:
        if defect.model_id is not None and defect.model_id not in self._known_models:
            # A missing model would fail the whole group; find out first (once per model).
            return self._db.runQuery("SELECT 1 FROM ai_models WHERE id = %s", (defect.model_id,)).addCallback(
                self._model_checked, defect)
        waiting = defer.Deferred()
        self._pending.append((defect, waiting))
        if self._tick is None:
            self._tick = self._clock.callLater(0, self._end_of_tick)
        return waiting

    def _end_of_tick(self) -> None:
        self._tick = None
        self._flush()

    def _model_checked(self, rows, defect):
        if not rows:
            raise UnknownModel([defect.model_id])
        self._known_models.add(defect.model_id)
        return self.submit(defect)

    def _flush(self) -> None:
        while self._pending and self._in_flight < self._parallel:
            group, self._pending = self._pending[:self._max_group], self._pending[self._max_group:]
            self._in_flight += 1
            self._write(group).addBoth(self._written)

    def _written(self, _):
        self._in_flight -= 1
        self._flush()

    @defer.inlineCallbacks
    def _write(self, group):
        try:
            rows = yield self._db.runQuery(_GROUP_SQL, (_group_json(group),))
        except pg_errors.ForeignKeyViolation:
            # A model deleted meanwhile: store them one by one, so only that one fails.
            self._known_models.clear()
            for d, waiting in group:
                self.submit(d).chainDeferred(waiting)
            return
        except UNAVAILABLE as error:
            for _d, waiting in group:
                waiting.errback(error)
            return
        except Exception as error:
            if len(group) == 1:
                group[0][1].errback(error)
                return
            # One defect the database (or the encoder) refuses must not fail the others
            # that happened to share its statement: each goes again on its own.
            for item in group:
                yield self._write([item])
            return
        stored = {index: RawRow(text) for index, text, _ in rows}
        for index, (d, waiting) in enumerate(group):
            if index in stored:
                waiting.callback((stored[index], True))
            else:  # a repeated event_id: answer with the row stored before
                self._db.runQuery(STORED_EVENT_SQL, (d.event_id,)).addCallback(lambda found: (RawRow(found[0][0]), False)
                                                             ).chainDeferred(waiting)


# Many defects (blocking: run on the SyncPool) ----------------------------------------------

def store_many(connection, defects: Sequence[Defect], *, batch_info: Any = None,
               image_ids: dict[str, int] | None = None, check_events: bool = True) -> BatchResult:
    """Store ``defects`` in the caller's transaction; skip (and report) event_ids already stored.

    ``image_ids`` maps kind -> id of the images these defects belong to (an uploaded pair).
    Without ``check_events`` stored event_ids are not looked up first: a repeat then fails
    with UniqueViolation (the caller retries with the check).
    Raises UnknownModel naming the model ids that do not exist.
    """
    return store_rows(connection, [defect_row(d) for d in defects], batch_info=batch_info,
                      image_ids=image_ids, check_events=check_events)


def store_rows(connection, rows: Sequence[DefectRow], *, batch_info: Any = None,
               image_ids: dict[str, int] | None = None, check_events: bool = True) -> BatchResult:
    """``store_many`` for validated defects as DefectRows."""
    with connection.cursor() as cursor:
        model_ids = sorted({r.model_id for r in rows if r.model_id is not None})
        if model_ids:
            cursor.execute("SELECT id FROM ai_models WHERE id = ANY(%s)", (model_ids,))
            missing = set(model_ids) - {row[0] for row in cursor.fetchall()}
            if missing:
                raise UnknownModel(sorted(missing))

        events = [r.event_id for r in rows if r.event_id is not None]
        stored_events: set[str] = set()
        if events and check_events:
            cursor.execute("SELECT event_id::text FROM defect_event_ids WHERE event_id = ANY(%s::uuid[])", (events,))
            stored_events = {row[0] for row in cursor.fetchall()}
        fresh = [r for r in rows if r.event_id is None or r.event_id not in stored_events] if stored_events else rows

        names = {}
        if image_ids is None:
            wanted = {name_from_path(p) for r in fresh for p in (r.original_image_path, r.labeled_image_path)
                      if p is not None} - {None}
            if wanted:
                cursor.execute("SELECT kind, filename, id FROM images WHERE filename = ANY(%s)", (sorted(wanted),))
                names = {(kind, name): row_id for kind, name, row_id in cursor.fetchall()}

        if not fresh:
            return BatchResult(0, sorted(stored_events), [])
        info = None if batch_info is None else json.dumps(batch_info, ensure_ascii=False)

        def image_links(r):
            if image_ids is not None:
                return image_ids.get("original"), image_ids.get("labeled")
            if r.original_image_path is None and r.labeled_image_path is None:
                return None, None
            return (names.get(("original", name_from_path(r.original_image_path))),
                    names.get(("labeled", name_from_path(r.labeled_image_path))))

        if len(fresh) <= SMALL:
            # A few rows: one multi-row INSERT that also sends the events (one round trip).
            template = "(" + ", ".join(["%s"] * (len(_COLUMNS) - 1)) + ")"
            values = [(*r[:ROW_IMAGE_LINKS], *image_links(r), r.model_id, r.camera_id, info, r.detection_time_source)
                      for r in fresh]
            cursor.execute(
                f"WITH ins AS (INSERT INTO defect_detections ({', '.join(_COLUMNS[1:])}) VALUES"
                f" {', '.join(cursor.mogrify(template, row).decode() for row in values)} RETURNING *),"
                f" registered AS (INSERT INTO defect_event_ids (event_id, defect_id)"
                f" SELECT ins.event_id, ins.id FROM ins WHERE ins.event_id IS NOT NULL)"
                f" SELECT ins.id, pg_notify('{EVENTS}', {_EVENT_SQL}) FROM ins ORDER BY ins.id")
            ids = [row[0] for row in cursor.fetchall()]
            return BatchResult(len(fresh), sorted(stored_events), ids)

        # Many rows: ids first (so that the events can name them), then COPY, the fastest path.
        cursor.execute("SELECT nextval('defect_detections_id_seq') FROM generate_series(1, %s)", (len(fresh),))
        ids = [row[0] for row in cursor.fetchall()]
        data, payloads = copy_and_events(ids, fresh, info, image_links if names or image_ids is not None else None)
        # One read of the whole text (psycopg2 reads 8 KB at a time by default).
        cursor.copy_expert(f"COPY defect_detections ({', '.join(_COPY_COLUMNS)}) FROM STDIN", io.StringIO(data),
                           size=max(8192, len(data)))
        # Events built here and sent in one statement (measured faster than building them in SQL),
        # as ONE text, a payload a line: psycopg2 quoting 1,000 strings for an array cost 2.5 ms
        # more CPU here and PostgreSQL 2 ms more. The payloads are JSON with every string
        # escaped (no raw line break can occur in them).
        cursor.execute(f"SELECT count(pg_notify('{EVENTS}', p)) FROM unnest(string_to_array(%s, E'\\n')) AS p",
                       ("\n".join(payloads),))
        register_events(cursor, [(r.event_id, row_id) for r, row_id in zip(fresh, ids) if r.event_id is not None])
        return BatchResult(len(fresh), sorted(stored_events), ids)


def register_events(cursor, pairs: list[tuple[str, int]]) -> None:
    """Record the event ids of defects just stored; a repeated one raises UniqueViolation and
    with it the caller's transaction fails whole, as the unique column did before schema/123."""
    if pairs:
        cursor.execute("INSERT INTO defect_event_ids (event_id, defect_id)"
                       " SELECT * FROM unnest(%s::uuid[], %s::bigint[])",
                       ([e for e, _ in pairs], [i for _, i in pairs]))


#: The columns of a DefectRow stored as they are, in _COLUMNS order (up to labeled_image_path);
#: the image ids, model, camera and batch_info follow them in the INSERT.
ROW_IMAGE_LINKS = DefectRow._fields.index("model_id")
assert DefectRow._fields[:ROW_IMAGE_LINKS] == _COLUMNS[1:ROW_IMAGE_LINKS + 1]


#: COPY's column order: per-row values first, then those a batch mostly repeats (one cached piece).
_COPY_COLUMNS = ("id", "event_id", "confidence_score", "needs_review", "defect_position_x", "defect_position_y",
                 "defect_size_width", "defect_size_height", "defect_position_meter", "detection_time",
                 "detection_time_source", "original_image_path", "labeled_image_path", "original_image_id",
                 "labeled_image_id", "model_id",
                 "coil_number", "defect_type", "severity", "camera_id", "batch_info")
assert sorted(_COPY_COLUMNS) == sorted(_COLUMNS)


def copy_and_events(ids: Sequence[int], rows: Sequence[DefectRow], info: str | None, image_links) -> tuple[str, list]:
    """The COPY data (text format, ``_COPY_COLUMNS`` order) and the ccl_events payloads of ``rows``.

    Built with f-strings and caches, not csv.writer and json.dumps: the coil, type, severity
    and camera of a batch repeat, so their escaped COPY text and JSON are made once per
    combination; paths and times once per distinct value.
    """
    nul = NULL
    shared: dict = {}
    texts: dict = {None: nul}
    times: dict = {}
    info_text = nul if info is None else copy_str(info)
    lines, events = [], []
    line, event = lines.append, events.append
    for row_id, r in zip(ids, rows):
        (event_id, coil, defect_type, confidence, severity, review, x, y, w, h, meter, moment,
         original, labeled, model_id, camera, source) = r
        key = (coil, defect_type, severity, camera)
        pieces = shared.get(key)
        if pieces is None:
            pieces = shared[key] = (
                "\t".join((copy_str(coil), copy_str(defect_type), severity, copy_str(camera), info_text)),
                f'"coil_number": {_quote(coil)}, "defect_type": {_quote(defect_type)}, "severity": "{severity}",',
                _quote(camera))
        stamp = times.get(moment)
        if stamp is None:
            stamp = times[moment] = moment.isoformat()
        if original is None and labeled is None and image_links is None:
            paths = "\\N\t\\N\t\\N\t\\N"
        else:
            paths = texts.get(original)
            if paths is None:
                paths = texts[original] = copy_str(original)
            second = texts.get(labeled)
            if second is None:
                second = texts[labeled] = copy_str(labeled)
            original_id, labeled_id = image_links(r) if image_links is not None else (None, None)
            paths = (f"{paths}\t{second}\t{nul if original_id is None else original_id}"
                     f"\t{nul if labeled_id is None else labeled_id}")
        conf = repr(confidence)
        metres = "null" if meter is None else repr(meter)
        line(f"{row_id}\t{event_id or nul}\t{conf}\t{'t' if review else 'f'}"
             f"\t{nul if x is None else x}\t{nul if y is None else y}\t{nul if w is None else w}"
             f"\t{nul if h is None else h}\t{nul if meter is None else metres}\t{stamp}\t{source}\t{paths}"
             f"\t{nul if model_id is None else model_id}\t{pieces[0]}\n")
        event(f'{{"table": "defect_detections", "id": {row_id}, {pieces[1]} "confidence_score": {conf},'
              f' "defect_position_meter": {metres}, "camera_id": {pieces[2]}}}')
    return "".join(lines), events


def store_batch(connection, rows: Sequence[DefectRow], batch_info: Any = None) -> BatchResult:
    """A whole batch (validated DefectRows) in one transaction.

    Optimistic: most batches are new, so they go without looking up their event_ids first; a
    batch sent again (the Jetson retrying after a lost reply) hits the unique key, and is then
    stored with the look-up, skipping what is stored already.
    """
    for attempt in range(3):
        try:
            return store_rows(connection, rows, batch_info=batch_info, check_events=attempt > 0)
        except pg_errors.UniqueViolation:
            connection.rollback()
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


# AI models ---------------------------------------------------------------------------------

def update_performance(connection, model_id: int, scores: Performance) -> dict | None:
    """Update the model's current scores (absent ones kept) and append them to the history."""
    values = attrs.asdict(scores)
    with connection.cursor() as cursor:
        assignments = ", ".join(f"{name} = COALESCE(%({name})s, {name})" for name in SCORES)
        cursor.execute(f"UPDATE ai_models SET {assignments}, updated_at = now() WHERE id = %(id)s"
                       f" RETURNING row_to_json(ai_models)::text", {**values, "id": model_id})
        row = cursor.fetchone()
        if row is None:
            return None
        model = json.loads(row[0])
        cursor.execute(f"INSERT INTO ai_model_metrics (model_id, {', '.join(SCORES)}) VALUES (%s, %s, %s, %s, %s)",
                       (model_id, *(model[name] for name in SCORES)))
        cursor.execute(f"SELECT pg_notify('{EVENTS}', %s)",
                       (json.dumps({"table": "ai_models", "id": model_id, **{n: model[n] for n in SCORES}}),))
        return model


def performance_history(db, model_id: int, limit: int):
    def shape(rows):
        if not rows[0][0]:
            return None
        return {"model": json.loads(rows[0][0]), "history": json.loads(rows[0][1])}

    return db.runQuery(
        "SELECT (SELECT row_to_json(m)::text FROM ai_models m WHERE id = %(id)s),"
        " (SELECT coalesce(json_agg(h ORDER BY h.recorded_at DESC), '[]')::text FROM"
        "   (SELECT recorded_at, accuracy_score, precision_score, recall_score, f1_score FROM ai_model_metrics"
        "    WHERE model_id = %(id)s ORDER BY recorded_at DESC LIMIT %(limit)s) h)",
        {"id": model_id, "limit": limit}).addCallback(shape)


# Reads -------------------------------------------------------------------------------------

#: /stats: one pass over the table for the totals, by type and by severity (at most types x 4
#: groups), summed up in the same statement. A statement per figure read the table seven times:
#: /stats took 1.7 s for 1,000,000 defects, 0.36 s with this and the coil look-up below.
_STATS_SQL = """
WITH g AS MATERIALIZED (
    SELECT defect_type, severity, count(*) AS n, sum(confidence_score) AS s,
           count(*) FILTER (WHERE needs_review AND review_status = 'new') AS r,
           max(detection_time) AS t, max(received_at) AS rt
    FROM defect_detections GROUP BY defect_type, severity)
SELECT json_build_object(
    'total', (SELECT coalesce(sum(n), 0) FROM g),
    'needs_review', (SELECT coalesce(sum(r), 0) FROM g),
    'average_confidence', (SELECT sum(s) / sum(n)::float8 FROM g),
    'last_defect_time', (SELECT max(t) FROM g),
    'last_received_at', (SELECT max(rt) FROM g),
    'by_type', (SELECT coalesce(json_agg(x ORDER BY x.count DESC, x.defect_type), '[]') FROM
        (SELECT defect_type, sum(n) AS count, sum(s) / sum(n)::float8 AS average_confidence
         FROM g GROUP BY defect_type) x),
    'by_severity', (SELECT coalesce(json_object_agg(severity, n), '{}') FROM
        (SELECT severity, sum(n) AS n FROM g GROUP BY severity) y))::text"""

#: The coils last seen are the first distinct coils of the newest defects: found in a window of
#: them (read backwards along the detection_time index) instead of grouping the whole table.
_RECENT_COILS_SQL = """
WITH w AS MATERIALIZED (
    SELECT coil_number, detection_time FROM defect_detections ORDER BY detection_time DESC LIMIT %(window)s)
SELECT (SELECT count(*) FROM w),
       coalesce((SELECT array_agg(coil_number ORDER BY last DESC) FROM
                 (SELECT coil_number, max(detection_time) AS last FROM w GROUP BY coil_number
                  ORDER BY last DESC LIMIT %(coils)s) c), '{}')"""

_COIL_FIGURES = """SELECT coalesce(json_agg(c ORDER BY c.last_defect_time DESC, c.coil_number), '[]')::text FROM
    (SELECT coil_number, count(*) AS count, avg(confidence_score) AS average_confidence,
            max(detection_time) AS last_defect_time
     FROM defect_detections WHERE {where} GROUP BY coil_number ORDER BY max(detection_time) DESC LIMIT %(coils)s) c"""

#: How many of the newest defects are looked at for the coils last seen.
RECENT_WINDOW = 20_000


@defer.inlineCallbacks
def defect_stats(db, *, coils: int = 50, window: int = RECENT_WINDOW):
    """GET /stats of ccl-defects: totals, by type, by severity, and the ``coils`` coils with the
    newest defects (each with its count and average confidence over all its defects)."""
    rows = yield db.runQuery(_STATS_SQL)
    stats = json.loads(rows[0][0])
    rows = yield db.runQuery(_RECENT_COILS_SQL, {"window": window, "coils": coils})
    looked_at, recent = rows[0]
    if len(recent) >= coils or looked_at < window:
        # Exact: every coil outside the window was last seen before all of those in it (or
        # the window held the whole table).
        where, params = "coil_number = ANY(%(names)s)", {"names": list(recent), "coils": coils}
    else:  # a few coils with very many defects each: group them all
        where, params = "true", {"coils": coils}
    rows = yield db.runQuery(_COIL_FIGURES.format(where=where), params)
    stats["by_coil"] = json.loads(rows[0][0])
    return stats


def recent_defects(db, *, limit: int, hours: float):
    return db.runQuery("""
        SELECT coalesce(json_agg(r ORDER BY r.detection_time DESC, r.id DESC), '[]')::text FROM (
            SELECT d.id, d.event_id, d.coil_number, d.defect_type, d.confidence_score, d.severity,
                   d.needs_review, d.defect_position_x, d.defect_position_y, d.defect_size_width,
                   d.defect_size_height, d.defect_position_meter, d.detection_time, d.received_at,
                   d.original_image_path, d.labeled_image_path, d.original_image_id, d.labeled_image_id,
                   d.model_id, d.camera_id, d.review_status, s.customer_name, s.ccl_bom
            FROM defect_detections d
            LEFT JOIN LATERAL (SELECT customer_name, ccl_bom FROM tc_4000_schedule
                               WHERE coil_number = d.coil_number ORDER BY received_at DESC LIMIT 1) s ON true
            WHERE d.detection_time >= now() - make_interval(secs => %s)
            ORDER BY d.detection_time DESC, d.id DESC LIMIT %s) r""",
                       (hours * 3600.0, limit)).addCallback(lambda rows: json.loads(rows[0][0]))


# The port ------------------------------------------------------------------------------------

class CachedThresholds:
    """The severity and review thresholds from system_settings, read at most every ``cache_seconds``."""

    def __init__(self, db, clock, cache_seconds: float = 10.0):
        self._db = db
        self._clock = clock
        self._cache_seconds = cache_seconds
        self._cached: Thresholds | None = None
        self._cached_at = 0.0

    def __call__(self) -> defer.Deferred:
        now = self._clock.seconds()
        if self._cached is not None and now - self._cached_at < self._cache_seconds:
            return defer.succeed(self._cached)

        def keep(value):
            self._cached, self._cached_at = value, now
            return value

        return load_thresholds(self._db).addCallback(keep).addErrback(as_store_unavailable)


@implementer(IDefectRecords)
class DefectRecords:
    """IDefectRecords on PostgreSQL: singles grouped by SingleWriter on the txpostgres pool,
    batches and score updates on the SyncPool, reads on the txpostgres pool."""

    def __init__(self, db, pool, clock, *, thresholds: CachedThresholds | None = None):
        self._db = db
        self._pool = pool
        self._writer = SingleWriter(db, clock=clock)
        self.thresholds = thresholds or CachedThresholds(db, clock)

    def store_single(self, defect: Defect) -> defer.Deferred:
        return self._writer.submit(defect).addErrback(as_store_unavailable)

    def store_batch(self, prepare) -> defer.Deferred:
        return self._pool.run(_prepare_and_store, prepare)

    def update_performance(self, model_id: int, scores: Performance) -> defer.Deferred:
        return self._pool.run(update_performance, model_id, scores)

    def performance_history(self, model_id: int, limit: int) -> defer.Deferred:
        return performance_history(self._db, model_id, limit).addErrback(as_store_unavailable)

    def stats(self) -> defer.Deferred:
        return defect_stats(self._db).addErrback(as_store_unavailable)

    def recent(self, limit: int, hours: float) -> defer.Deferred:
        return recent_defects(self._db, limit=limit, hours=hours).addErrback(as_store_unavailable)


def _prepare_and_store(connection, prepare):
    """On the SyncPool thread: the caller's parse-and-check, then the batch, one transaction."""
    prepared, rows, batch_info = prepare()
    return prepared, store_batch(connection, rows, batch_info)
