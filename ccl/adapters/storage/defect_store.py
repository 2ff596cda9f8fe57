"""Defects and AI model scores in PostgreSQL.

Two paths: a single defect is one statement on the txpostgres pool (insert, de-duplicate by
event_id and NOTIFY at once); a batch (or the defects of an image pair) is one transaction on
the blocking pool with COPY, the fastest way PostgreSQL takes many rows.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from json.encoder import encode_basestring_ascii as _quote
from typing import Any

import attrs
from psycopg2 import errors as pg_errors
from twisted.internet import defer

from ccl.domain.ingest.defects import SCORES, Defect, Performance, Thresholds
from ccl.domain.ingest.images import name_from_path

EVENTS = "ccl_events"
_COLUMNS = ("id", "event_id", "coil_number", "defect_type", "confidence_score", "severity", "needs_review",
            "defect_position_x", "defect_position_y", "defect_size_width", "defect_size_height",
            "defect_position_meter", "detection_time", "original_image_path", "labeled_image_path",
            "original_image_id", "labeled_image_id", "model_id", "camera_id", "batch_info")
_SINGLE_COLUMNS = _COLUMNS[1:]
#: Batches up to this size go as one INSERT; larger ones by COPY.
SMALL = 200
#: The event the live UI gets for each stored defect (built by PostgreSQL from the row ``ins``).
_EVENT_SQL = ("json_build_object('table', 'defect_detections', 'id', ins.id, 'coil_number', ins.coil_number,"
              " 'defect_type', ins.defect_type, 'severity', ins.severity, 'confidence_score', ins.confidence_score,"
              " 'defect_position_meter', ins.defect_position_meter, 'camera_id', ins.camera_id)::text")


class RawRow(str):
    """A stored row as PostgreSQL's JSON text: replies pass it on without decoding it."""


class UnknownModel(ValueError):
    def __init__(self, model_ids: Sequence[int]):
        super().__init__(", ".join(map(str, model_ids)))
        self.model_ids = list(model_ids)


@attrs.frozen
class BatchResult:
    stored: int
    duplicates: list[str]
    ids: list[int]


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

_GROUP_COLUMNS = _SINGLE_COLUMNS[:14] + ("oname", "lname") + _SINGLE_COLUMNS[16:18]


def _group_sql(count: int) -> str:
    """One statement for ``count`` defects: ids, rows, image links, events; returns (ord, row)."""
    row = "(" + ", ".join(["%s"] * (len(_GROUP_COLUMNS) + 1)) + ")"
    return f"""
WITH v (ord, {", ".join(_GROUP_COLUMNS)}) AS (VALUES {", ".join([row] * count)}),
n AS MATERIALIZED (SELECT nextval('defect_detections_id_seq') AS id, v.* FROM v),
ins AS (
    INSERT INTO defect_detections (id, {", ".join(_SINGLE_COLUMNS)})
    SELECT n.id, n.event_id::uuid, n.coil_number, n.defect_type, n.confidence_score::float8, n.severity,
           n.needs_review::boolean, n.defect_position_x::int, n.defect_position_y::int,
           n.defect_size_width::int, n.defect_size_height::int, n.defect_position_meter::float8,
           n.detection_time::timestamptz, n.original_image_path, n.labeled_image_path,
           (SELECT i.id FROM images i WHERE i.kind = 'original' AND i.filename = n.oname),
           (SELECT i.id FROM images i WHERE i.kind = 'labeled' AND i.filename = n.lname),
           n.model_id::int, n.camera_id, NULL::jsonb
    FROM n ORDER BY n.ord
    ON CONFLICT (event_id) DO NOTHING
    RETURNING *)
SELECT n.ord, row_to_json(ins)::text, pg_notify('{EVENTS}', {_EVENT_SQL})
FROM ins JOIN n ON n.id = ins.id"""


def _params(d: Defect) -> tuple:
    return (d.event_id, d.coil_number, d.defect_type, d.confidence_score, d.severity, d.needs_review,
            d.defect_position_x, d.defect_position_y, d.defect_size_width, d.defect_size_height,
            d.defect_position_meter, d.detection_time, d.original_image_path, d.labeled_image_path,
            name_from_path(d.original_image_path), name_from_path(d.labeled_image_path), d.model_id, d.camera_id)


class SingleWriter:
    """Stores single defects, many requests to one transaction (group commit).

    Each POST /defect/single waits for its own row to be committed, but while one statement is
    being committed (an fsync of the WAL, milliseconds), the requests that arrive meanwhile
    gather and go together in the next: one fsync for many defects, no timer, no added wait
    when the line is quiet. Fires ``(row, created)``; a stored event_id gives the stored row.
    """

    def __init__(self, db, *, parallel: int = 2, max_group: int = 500):
        self._db = db
        self._parallel = parallel
        self._max_group = max_group
        self._pending: list[tuple[Defect, defer.Deferred]] = []
        self._in_flight = 0
        self._known_models: set[int] = set()

    def submit(self, defect: Defect) -> defer.Deferred:
        if defect.model_id is not None and defect.model_id not in self._known_models:
            # A missing model would fail the whole group; find out first (once per model).
            return self._db.runQuery("SELECT 1 FROM ai_models WHERE id = %s", (defect.model_id,)).addCallback(
                self._model_checked, defect)
        waiting = defer.Deferred()
        self._pending.append((defect, waiting))
        self._flush()
        return waiting

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
        params: list = []
        for index, (d, _waiting) in enumerate(group):
            params.append(index)
            params.extend(_params(d))
        try:
            rows = yield self._db.runQuery(_group_sql(len(group)), params)
        except pg_errors.ForeignKeyViolation:
            # A model deleted meanwhile: store them one by one, so only that one fails.
            self._known_models.clear()
            for d, waiting in group:
                self.submit(d).chainDeferred(waiting)
            return
        except Exception as error:
            for _d, waiting in group:
                waiting.errback(error)
            return
        stored = {index: RawRow(text) for index, text, _ in rows}
        for index, (d, waiting) in enumerate(group):
            if index in stored:
                waiting.callback((stored[index], True))
            else:  # a repeated event_id: answer with the row stored before
                self._db.runQuery("SELECT row_to_json(d)::text FROM defect_detections d WHERE event_id = %s",
                                  (d.event_id,)).addCallback(lambda found: (RawRow(found[0][0]), False)
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
    with connection.cursor() as cursor:
        model_ids = sorted({d.model_id for d in defects if d.model_id is not None})
        if model_ids:
            cursor.execute("SELECT id FROM ai_models WHERE id = ANY(%s)", (model_ids,))
            missing = set(model_ids) - {row[0] for row in cursor.fetchall()}
            if missing:
                raise UnknownModel(sorted(missing))

        events = [d.event_id for d in defects if d.event_id is not None]
        stored_events: set[str] = set()
        if events and check_events:
            cursor.execute("SELECT event_id::text FROM defect_detections WHERE event_id = ANY(%s::uuid[])", (events,))
            stored_events = {row[0] for row in cursor.fetchall()}
        fresh = [d for d in defects if d.event_id is None or d.event_id not in stored_events]

        names = {}
        if image_ids is None:
            wanted = {name_from_path(p) for d in fresh for p in (d.original_image_path, d.labeled_image_path)} - {None}
            if wanted:
                cursor.execute("SELECT kind, filename, id FROM images WHERE filename = ANY(%s)", (sorted(wanted),))
                names = {(kind, name): row_id for kind, name, row_id in cursor.fetchall()}

        if not fresh:
            return BatchResult(0, sorted(stored_events), [])
        info = None if batch_info is None else json.dumps(batch_info, ensure_ascii=False)

        def values(row_id, d):
            if image_ids is not None:
                original_id, labeled_id = image_ids.get("original"), image_ids.get("labeled")
            else:
                original_id = names.get(("original", name_from_path(d.original_image_path)))
                labeled_id = names.get(("labeled", name_from_path(d.labeled_image_path)))
            return (row_id, d.event_id, d.coil_number, d.defect_type, d.confidence_score, d.severity,
                    d.needs_review, d.defect_position_x, d.defect_position_y, d.defect_size_width,
                    d.defect_size_height, d.defect_position_meter, d.detection_time, d.original_image_path,
                    d.labeled_image_path, original_id, labeled_id, d.model_id, d.camera_id, info)

        if len(fresh) <= SMALL:
            # A few rows: one multi-row INSERT that also sends the events (one round trip).
            template = "(" + ", ".join(["%s"] * (len(_COLUMNS) - 1)) + ")"
            rows = [values(None, d)[1:] for d in fresh]
            cursor.execute(
                f"WITH ins AS (INSERT INTO defect_detections ({', '.join(_COLUMNS[1:])}) VALUES"
                f" {', '.join(cursor.mogrify(template, row).decode() for row in rows)} RETURNING *)"
                f" SELECT ins.id, pg_notify('{EVENTS}', {_EVENT_SQL}) FROM ins ORDER BY ins.id")
            ids = [row[0] for row in cursor.fetchall()]
            return BatchResult(len(fresh), sorted(stored_events), ids)

        # Many rows: ids first (so that the events can name them), then COPY, the fastest path.
        # csv.writer is C: None becomes an empty (NULL) field; validated texts are never empty.
        cursor.execute("SELECT nextval('defect_detections_id_seq') FROM generate_series(1, %s)", (len(fresh),))
        ids = [row[0] for row in cursor.fetchall()]
        buffer = io.StringIO()
        # Most defects of a batch share one detection time: format each distinct time once.
        times: dict = {}

        def row(row_id, d):
            line = values(row_id, d)
            stamp = times.get(d.detection_time)
            if stamp is None:
                stamp = times[d.detection_time] = d.detection_time.isoformat()
            return line[:12] + (stamp,) + line[13:]

        csv.writer(buffer, lineterminator="\n").writerows(row(row_id, d) for row_id, d in zip(ids, fresh))
        buffer.seek(0)
        cursor.copy_expert(f"COPY defect_detections ({', '.join(_COLUMNS)}) FROM STDIN WITH (FORMAT csv)", buffer)
        # Events built here and sent in one statement (measured faster than building them in SQL).
        payloads = [event_text(row_id, d) for row_id, d in zip(ids, fresh)]
        cursor.execute(f"SELECT count(pg_notify('{EVENTS}', p)) FROM unnest(%s::text[]) AS p", (payloads,))
        return BatchResult(len(fresh), sorted(stored_events), ids)


def store_batch(connection, defects: Sequence[Defect], batch_info: Any = None) -> BatchResult:
    """A whole batch in one transaction.

    Optimistic: most batches are new, so they go without looking up their event_ids first; a
    batch sent again (the Jetson retrying after a lost reply) hits the unique key, and is then
    stored with the look-up, skipping what is stored already.
    """
    for attempt in range(3):
        try:
            return store_many(connection, defects, batch_info=batch_info, check_events=attempt > 0)
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

def defect_stats(db):
    return db.runQuery("""
        SELECT json_build_object(
            'total', (SELECT count(*) FROM defect_detections),
            'needs_review', (SELECT count(*) FROM defect_detections WHERE needs_review AND review_status = 'new'),
            'average_confidence', (SELECT avg(confidence_score) FROM defect_detections),
            'last_defect_time', (SELECT max(detection_time) FROM defect_detections),
            'last_received_at', (SELECT max(received_at) FROM defect_detections),
            'by_type', (SELECT coalesce(json_agg(t ORDER BY t.count DESC), '[]') FROM
                (SELECT defect_type, count(*) AS count, avg(confidence_score) AS average_confidence
                 FROM defect_detections GROUP BY defect_type) t),
            'by_severity', (SELECT coalesce(json_object_agg(severity, n), '{}') FROM
                (SELECT severity, count(*) AS n FROM defect_detections GROUP BY severity) s),
            'by_coil', (SELECT coalesce(json_agg(c ORDER BY c.last_defect_time DESC), '[]') FROM
                (SELECT coil_number, count(*) AS count, avg(confidence_score) AS average_confidence,
                        max(detection_time) AS last_defect_time
                 FROM defect_detections GROUP BY coil_number ORDER BY max(detection_time) DESC LIMIT 50) c)
        )::text""").addCallback(lambda rows: json.loads(rows[0][0]))


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
