"""The quality decisions' tables in PostgreSQL (schema/100): periodic series and their members,
alerts raised by defect alarms, rule books, coil grades, rolls and alarm rules."""

from __future__ import annotations

import json

from twisted.internet import defer
from zope.interface import implementer

from ccl.adapters.storage.defect_keys import DEFECT_BY_KEY
from ccl.adapters.storage.postgres import Database, notify_sql, port_errors
from ccl.domain.events import EVENTS_CHANNEL
from ccl.ports import StoreRefused
from ccl.ports.quality import (
    CoilRecord, IGradingStore, IQualityAdmin, IQualityStore, LineState, QualityDefect, RuleBookVersion, StoredRoll)

#: Each tracked defect's row found by id in the month of its receipt (DEFECT_BY_KEY).
_DEFECTS = f"""SELECT t.defect_id, t.tracked_coil, c.coil_number, t.camera_id, coalesce(t.surface, t.camera_id), t.metre,
    t.in_weld_zone, d.defect_type, d.severity, d.defect_position_x, d.defect_size_width, d.defect_size_height,
    d.review_status
    FROM tracking_defects t {DEFECT_BY_KEY.format(id="t.defect_id", received_at="t.defect_received_at")}
    JOIN tracking_coils c ON c.tracked_coil = t.tracked_coil
    WHERE t.status = 'placed' AND t.metre IS NOT NULL AND """

#: domain alarm severity (a defect's) -> the alerts table's severity
ALERT_SEVERITY = {"low": "info", "medium": "warning", "high": "warning", "critical": "critical"}
_ROLL = "id, name, diameter_mm, location, notes, updated_at, updated_by"
_BOOK = "version, document, comment, active, created_at, created_by"


def _defects(rows) -> list[QualityDefect]:
    return [QualityDefect(*row) for row in rows]


def _event(payload: dict) -> str:
    return json.dumps(payload, ensure_ascii=False, default=str)


def alert_rule(kind: str) -> str:
    """The ``alerts.rule`` of a defect alarm kind."""
    return f"quality.{kind}"


async def _coil_defects(db, tracked_coil: str) -> list[QualityDefect]:
    return _defects(await db.runQuery(_DEFECTS + "t.tracked_coil = %s ORDER BY t.metre, t.defect_id", (tracked_coil,)))


async def _rolls(db) -> list[StoredRoll]:
    return [StoredRoll(*row) for row in await db.runQuery(f"SELECT {_ROLL} FROM quality_rolls ORDER BY name")]


async def _alarm_rules(db) -> list:
    rows = await db.runQuery("SELECT value FROM system_settings WHERE key = 'alarm_rules'")
    value = rows[0][0] if rows else []
    return value if isinstance(value, list) else []


@port_errors
@implementer(IQualityStore)
class QualityRecords:
    def __init__(self, db: Database):
        self._db = db

    async def placed_defects(self, defect_ids):
        if not defect_ids:
            return []
        return _defects(await self._db.runQuery(_DEFECTS + "t.defect_id = ANY(%s)", (list(defect_ids),)))

    async def coil_defects(self, tracked_coil):
        return await _coil_defects(self._db, tracked_coil)

    async def rolls(self):
        return await _rolls(self._db)

    def save_series(self, tracked_coil, coil_number, keys, found, final):
        @defer.inlineCallbacks
        def save(cursor):
            new = []
            for surface, defect_type in keys:
                yield cursor.execute("SELECT id FROM periodic_series WHERE tracked_coil = %s AND surface = %s"
                                     " AND defect_type = %s ORDER BY id FOR UPDATE", (tracked_coil, surface, defect_type))
                yield cursor.execute(
                    "SELECT s.id, coalesce(array_agg(m.defect_id) FILTER (WHERE m.defect_id IS NOT NULL), '{}')"
                    " FROM periodic_series s LEFT JOIN periodic_members m ON m.series_id = s.id"
                    " WHERE s.tracked_coil = %s AND s.surface = %s AND s.defect_type = %s GROUP BY s.id ORDER BY s.id",
                    (tracked_coil, surface, defect_type))
                stored = {row[0]: set(row[1]) for row in cursor.fetchall()}
                kept = set()
                for series, roll in (f for f in found if (f[0].surface, f[0].defect_type) == (surface, defect_type)):
                    members = set(series.member_ids)
                    match = next((i for i, old in stored.items() if i not in kept and old & members), None)
                    values = (series.pitch_m, series.cross_mm, series.start_m, series.end_m, len(series.member_ids),
                              series.expected, roll, "final" if final else "live")
                    if match is None:
                        yield cursor.execute(
                            "INSERT INTO periodic_series (tracked_coil, coil_number, surface, defect_type, pitch_m,"
                            " cross_mm, start_m, end_m, members, expected, likely_roll, status)"
                            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                            (tracked_coil, coil_number, surface, defect_type, *values))
                        match = cursor.fetchone()[0]
                        new.append((match, series))
                    else:
                        yield cursor.execute(
                            "UPDATE periodic_series SET pitch_m = %s, cross_mm = %s, start_m = %s, end_m = %s,"
                            " members = %s, expected = %s, likely_roll = %s, status = %s, updated_at = now()"
                            " WHERE id = %s", (*values, match))
                        yield cursor.execute("DELETE FROM periodic_members WHERE series_id = %s", (match,))
                    kept.add(match)
                    # A defect belongs to one series: taken over from any other of the coil's.
                    yield cursor.execute(
                        "INSERT INTO periodic_members (defect_id, series_id) SELECT unnest(%s::bigint[]), %s"
                        " ON CONFLICT (defect_id) DO UPDATE SET series_id = excluded.series_id",
                        (list(series.member_ids), match))
                gone = [i for i in stored if i not in kept]
                if gone:
                    yield cursor.execute("DELETE FROM periodic_series WHERE id = ANY(%s)", (gone,))
            for series_id, series in new:
                yield cursor.execute(notify_sql(), (_event({
                    "table": "periodic_series", "id": series_id, "tracked_coil": tracked_coil,
                    "coil_number": coil_number, "surface": series.surface, "defect_type": series.defect_type,
                    "pitch_m": series.pitch_m}),))
            return new

        return self._db.runInteraction(save)

    def raise_alarms(self, alarms):
        @defer.inlineCallbacks
        def insert(cursor):
            raised = 0
            for alarm in alarms:
                rule, subject = alert_rule(alarm.kind), f"{alarm.rule}:{alarm.key}"
                severity = ALERT_SEVERITY[alarm.severity]
                message = f"{alarm.rule} — {alarm.message}"  # the rule's own (Korean) name first
                yield cursor.execute(
                    "INSERT INTO alerts (rule, subject, severity, message, details) VALUES (%s, %s, %s, %s, %s)"
                    " ON CONFLICT (rule, subject) WHERE cleared_at IS NULL DO NOTHING RETURNING id",
                    (rule, subject, severity, message,
                     _event({"alarm": alarm.rule, "defect_ids": list(alarm.defect_ids)})))
                row = cursor.fetchone()
                if row:
                    raised += 1
                    yield cursor.execute(notify_sql(), (_event({
                        "type": "alert", "event": "raised", "id": row[0], "rule": rule, "subject": subject,
                        "severity": severity, "message": message}),))
            return raised

        return self._db.runInteraction(insert)

    def _clear(self, where: str, params):
        @defer.inlineCallbacks
        def clear(cursor):
            yield cursor.execute(f"UPDATE alerts SET cleared_at = now() WHERE cleared_at IS NULL AND {where}"
                                 " RETURNING id, rule, subject", params)
            rows = cursor.fetchall()
            for row_id, rule, subject in rows:
                yield cursor.execute(notify_sql(), (_event({"type": "alert", "event": "cleared", "id": row_id,
                                                            "rule": rule, "subject": subject}),))
            return len(rows)

        return self._db.runInteraction(clear)

    def clear_alarms(self, rule, subjects):
        return self._clear("rule = %s AND subject = ANY(%s)", (rule, list(subjects)))

    def clear_acknowledged(self, rules):
        return self._clear("acknowledged_at IS NOT NULL AND rule = ANY(%s)", (list(rules),))

    async def alarm_rules(self):
        return await _alarm_rules(self._db)

    async def line_state(self, cameras):
        rows = await self._db.runQuery(
            "SELECT (SELECT line_speed FROM tc_4003_speed ORDER BY received_at DESC, id DESC LIMIT 1),"
            " (SELECT extract(epoch FROM now() - received_at)::float8 FROM tc_4003_speed"
            "   ORDER BY received_at DESC, id DESC LIMIT 1)")
        speed, age = rows[0]
        # Uploads, defect posts and heartbeats all mark the box's link (both ingest services).
        seen = await self._db.runQuery(
            "SELECT substr(link, length('jetson-') + 1), last_seen_at FROM link_status"
            " WHERE kind = 'jetson' AND last_seen_at IS NOT NULL AND link = ANY(%s)",
            ([f"jetson-{c}" for c in cameras],))
        return LineState(speed, age, {camera: at for camera, at in seen})


@port_errors
@implementer(IGradingStore)
class GradingRecords:
    def __init__(self, db: Database):
        self._db = db

    async def coil(self, tracked_coil):
        rows = await self._db.runQuery(
            "SELECT c.tracked_coil, c.coil_number, c.completeness, json_build_object('schedule_present',"
            " c.schedule_present, 'wpd_seen', c.wpd_seen, 'speed_gap_free', c.speed_gap_free, 'cut_seen', c.cut_seen,"
            " 'length_disagrees', c.length_disagrees), c.coverage, coalesce(c.length_m, c.mes_length_m),"
            " s.customer_name, s.ccl_bom, s.width"
            " FROM tracking_coils c LEFT JOIN LATERAL (SELECT customer_name, ccl_bom, width FROM tc_4000_schedule"
            "   WHERE coil_number = c.coil_number ORDER BY received_at DESC, id DESC LIMIT 1) s ON true"
            " WHERE c.tracked_coil = %s", (tracked_coil,))
        if not rows:
            return None
        row = list(rows[0])
        row[3] = json.loads(row[3]) if isinstance(row[3], str) else row[3]
        row[8] = None if row[8] is None else float(row[8])
        return CoilRecord(*row)

    async def coil_defects(self, tracked_coil):
        return await _coil_defects(self._db, tracked_coil)

    async def periodic_types(self, tracked_coil):
        rows = await self._db.runQuery("SELECT DISTINCT defect_type FROM periodic_series WHERE tracked_coil = %s"
                                       " ORDER BY 1", (tracked_coil,))
        return [r[0] for r in rows]

    async def active_book(self):
        rows = await self._db.runQuery(f"SELECT {_BOOK} FROM grading_rule_books WHERE active")
        return RuleBookVersion(*rows[0]) if rows else None

    async def books(self, limit):
        rows = await self._db.runQuery(f"SELECT {_BOOK} FROM grading_rule_books ORDER BY version DESC LIMIT %s",
                                       (limit,))
        return [RuleBookVersion(*row) for row in rows]

    def save_book(self, document, comment, by):
        @defer.inlineCallbacks
        def save(cursor):
            yield cursor.execute("LOCK TABLE grading_rule_books IN EXCLUSIVE MODE")
            yield cursor.execute("UPDATE grading_rule_books SET active = false WHERE active")
            yield cursor.execute(
                f"INSERT INTO grading_rule_books (document, comment, active, created_by) VALUES (%s, %s, true, %s)"
                f" RETURNING {_BOOK}", (json.dumps(document, ensure_ascii=False), comment, by))
            return RuleBookVersion(*cursor.fetchone())

        return self._db.runInteraction(save)

    def save_grade(self, tracked_coil, coil_number, decision, version, facts, graded_by):
        reasons = [{"rule": f.rule, "grade": f.grade, "disposition": f.disposition, "reasons": list(f.reasons)}
                   for f in decision.fired]
        return self._db.runOperation(
            "INSERT INTO coil_grades (tracked_coil, coil_number, grade, disposition, rule_version, reasons, facts,"
            " graded_by, graded_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, now())"
            " ON CONFLICT (tracked_coil) DO UPDATE SET coil_number = excluded.coil_number, grade = excluded.grade,"
            " disposition = excluded.disposition, rule_version = excluded.rule_version, reasons = excluded.reasons,"
            " facts = excluded.facts, graded_by = excluded.graded_by, graded_at = now(); " + notify_sql(),
            (tracked_coil, coil_number, decision.grade, decision.disposition, version,
             _event(reasons), _event(facts), graded_by,
             _event({"table": "coil_grades", "tracked_coil": tracked_coil, "coil_number": coil_number,
                     "grade": decision.grade, "disposition": decision.disposition})))

    def override(self, tracked_coil, grade, disposition, reason, by):
        @defer.inlineCallbacks
        def apply(cursor):
            yield cursor.execute(
                "SELECT tracked_coil, coil_number, grade, disposition, override_grade, override_disposition,"
                " override_reason, overridden_by FROM coil_grades WHERE tracked_coil = %s FOR UPDATE", (tracked_coil,))
            row = cursor.fetchone()
            if row is None:
                return None
            before = dict(zip(("tracked_coil", "coil_number", "grade", "disposition", "override_grade",
                               "override_disposition", "override_reason", "overridden_by"), row))
            yield cursor.execute(
                "UPDATE coil_grades SET override_grade = %s, override_disposition = %s, override_reason = %s,"
                " overridden_by = %s, overridden_at = now() WHERE tracked_coil = %s",
                (grade, disposition, reason, by, tracked_coil))
            yield cursor.execute(notify_sql(), (_event({
                "table": "coil_grades", "tracked_coil": tracked_coil, "coil_number": before["coil_number"],
                "grade": grade, "disposition": disposition, "override": True}),))
            return before

        return self._db.runInteraction(apply)

    async def graded(self, tracked_coils):
        rows = await self._db.runQuery("SELECT tracked_coil FROM coil_grades WHERE tracked_coil = ANY(%s)",
                                       (list(tracked_coils),))
        return {r[0] for r in rows}

    async def graded_coil_of_defect(self, defect_id):
        rows = await self._db.runQuery(
            "SELECT t.tracked_coil FROM tracking_defects t JOIN coil_grades g ON g.tracked_coil = t.tracked_coil"
            " WHERE t.defect_id = %s", (defect_id,))
        return rows[0][0] if rows else None

    async def recent_graded(self, limit):
        rows = await self._db.runQuery("SELECT tracked_coil FROM coil_grades ORDER BY graded_at DESC, tracked_coil"
                                       " LIMIT %s", (limit,))
        return [r[0] for r in rows]

    async def grades(self, coil_number):
        rows = await self._db.runQuery(
            "SELECT coalesce(json_agg(g ORDER BY g.graded_at DESC), '[]')::text FROM ("
            " SELECT tracked_coil, coil_number, grade, disposition, rule_version, reasons, graded_by, graded_at,"
            " override_grade, override_disposition, override_reason, overridden_by, overridden_at,"
            " coalesce(override_grade, grade) AS final_grade,"
            " coalesce(override_disposition, disposition) AS final_disposition"
            " FROM coil_grades WHERE coil_number = %s) g", (coil_number,))
        return json.loads(rows[0][0])


@port_errors
@implementer(IQualityAdmin)
class QualityAdminRecords:
    def __init__(self, db: Database):
        self._db = db

    async def rolls(self):
        return await _rolls(self._db)

    def save_roll(self, roll_id, name, diameter_mm, location, notes, by):
        @defer.inlineCallbacks
        def save(cursor):
            before = None
            yield cursor.execute("SELECT id FROM quality_rolls WHERE name = %s AND id IS DISTINCT FROM %s",
                                 (name, roll_id))
            if cursor.fetchone():
                raise StoreRefused(f"a roll named {name!r} exists")
            if roll_id is not None:
                yield cursor.execute(f"SELECT {_ROLL} FROM quality_rolls WHERE id = %s FOR UPDATE", (roll_id,))
                row = cursor.fetchone()
                if row is None:
                    return None
                before = _roll_dict(StoredRoll(*row))
                yield cursor.execute(
                    f"UPDATE quality_rolls SET name = %s, diameter_mm = %s, location = %s, notes = %s,"
                    f" updated_at = now(), updated_by = %s WHERE id = %s RETURNING {_ROLL}",
                    (name, diameter_mm, location, notes, by, roll_id))
            else:
                yield cursor.execute(
                    f"INSERT INTO quality_rolls (name, diameter_mm, location, notes, updated_by)"
                    f" VALUES (%s, %s, %s, %s, %s) RETURNING {_ROLL}", (name, diameter_mm, location, notes, by))
            after = _roll_dict(StoredRoll(*cursor.fetchone()))
            yield cursor.execute(notify_sql(), (_event({"table": "quality_rolls", "id": after["id"]}),))
            return before, after

        return self._db.runInteraction(save)

    async def delete_roll(self, roll_id):
        rows = await self._db.runQuery(
            f"WITH gone AS (DELETE FROM quality_rolls WHERE id = %s RETURNING {_ROLL})"
            f" SELECT gone.*, pg_notify('{EVENTS_CHANNEL}',"
            f" json_build_object('table', 'quality_rolls', 'id', gone.id)::text) FROM gone", (roll_id,))
        return _roll_dict(StoredRoll(*rows[0][:7])) if rows else None

    async def alarm_rules(self):
        return await _alarm_rules(self._db)

    def save_alarm_rules(self, rows, by):
        return self._db.runOperation(
            "INSERT INTO system_settings (key, value, updated_at, updated_by) VALUES ('alarm_rules', %s, now(), %s)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = now(),"
            " updated_by = excluded.updated_by; " + notify_sql(),
            (_event(rows), by, _event({"table": "system_settings", "key": "alarm_rules"})))


def _roll_dict(roll: StoredRoll) -> dict:
    return {"id": roll.id, "name": roll.name, "diameter_mm": roll.diameter_mm, "location": roll.location,
            "notes": roll.notes}
