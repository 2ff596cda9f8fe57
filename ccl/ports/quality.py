"""Ports of the quality decisions (docs/quality.md): the live roll-mark and alarm watch in
ccl-defects, coil grading, and the admin's tables (rolls, rule books, alarm rules). PostgreSQL:
ccl/adapters/storage/quality_store.py. Every method returns a Deferred and fails with
ports.StoreUnavailable while the database is down."""

from __future__ import annotations

import datetime

import attrs
from zope.interface import Interface


@attrs.frozen
class QualityDefect:
    """A tracked defect as the quality decisions see it (tracking_defects + defect_detections)."""

    defect_id: int
    tracked_coil: str
    coil_number: str
    camera_id: str
    surface: str
    metre: float
    in_weld_zone: bool
    defect_type: str
    severity: str
    x_px: int | None
    width_px: int | None
    height_px: int | None
    review_status: str


@attrs.frozen
class CoilRecord:
    """What grading reads of a tracked coil: tracking's results and the schedule in force."""

    tracked_coil: str
    coil_number: str
    completeness: str  # running | complete | partial | unknown
    checks: dict  # schedule_present, wpd_seen, speed_gap_free, cut_seen, length_disagrees -> bool
    coverage: dict  # camera -> share or None
    length_m: float | None
    customer: str | None
    product: str | None
    strip_width_mm: float | None


@attrs.frozen
class LineState:
    """For the camera-silent alarm: the newest line speed and each camera's last sign of life."""

    speed_mpm: int | None
    speed_age_s: float | None
    last_seen: dict[str, datetime.datetime]


@attrs.frozen
class RuleBookVersion:
    version: int
    document: dict
    comment: str
    active: bool
    created_at: datetime.datetime
    created_by: str


@attrs.frozen
class StoredRoll:
    id: int
    name: str
    diameter_mm: float
    location: str
    notes: str
    updated_at: datetime.datetime
    updated_by: str


class IQualityStore(Interface):
    """What the live watch (ccl-defects) reads and writes."""

    def placed_defects(defect_ids: list[int]):
        """Deferred[list[QualityDefect]]: those defects that tracking placed on a coil."""

    def coil_defects(tracked_coil: str):
        """Deferred[list[QualityDefect]]: every defect placed on that coil."""

    def rolls():
        """Deferred[list[StoredRoll]]."""

    def save_series(tracked_coil: str, coil_number: str, keys: list, found: list, final: bool):
        """Bring the stored series of the coil's (surface, defect type) ``keys`` in line with
        ``found`` ([(PeriodicSeries, likely roll name or None)]) in one transaction: a found
        series sharing members with a stored one updates it, one sharing none is inserted, a
        stored one no longer found is deleted; members marked. Deferred[list[(id, PeriodicSeries)]]
        of the inserted (newly confirmed) ones; each is announced on the events channel."""

    def raise_alarms(alarms: list):
        """Insert ``alarms`` (domain Alarm) into ``alerts`` (one open per rule and subject) and
        announce each new one on the events channel: Deferred[int] raised."""

    def clear_alarms(rule: str, subjects: list[str]):
        """Clear the open alerts of ``rule`` with those subjects (announced)."""

    def clear_acknowledged(rules: list[str]):
        """Clear the open, acknowledged alerts of ``rules`` (event alarms are done once seen)."""

    def alarm_rules():
        """Deferred[list[dict]]: the stored alarm rules (system_settings alarm_rules)."""

    def line_state(cameras: list[str]):
        """Deferred[LineState]."""


class IGradingStore(Interface):
    def coil(tracked_coil: str):
        """Deferred[CoilRecord | None]."""

    def coil_defects(tracked_coil: str):
        """Deferred[list[QualityDefect]]."""

    def periodic_types(tracked_coil: str):
        """Deferred[list[str]]: the defect types of the coil's confirmed series."""

    def active_book():
        """Deferred[RuleBookVersion]."""

    def books(limit: int):
        """Deferred[list[RuleBookVersion]], newest first."""

    def save_book(document: dict, comment: str, by: str):
        """A new version, made the active one: Deferred[RuleBookVersion]."""

    def save_grade(tracked_coil: str, coil_number: str, decision, version: int, facts: dict, graded_by: str):
        """Store the coil's computed grade (its override, if any, stays), announced on the events channel."""

    def override(tracked_coil: str, grade: str, disposition: str, reason: str, by: str):
        """Deferred[dict | None]: the grade row before the override (None: the coil has no grade)."""

    def graded(tracked_coils: list[str]):
        """Deferred[set[str]]: those of the coils that have a grade."""

    def graded_coil_of_defect(defect_id: int):
        """Deferred[str | None]: the tracked coil of the defect, when that coil has a grade."""

    def recent_graded(limit: int):
        """Deferred[list[str]]: tracked coils graded most recently, newest first."""

    def grades(coil_number: str):
        """Deferred[list[dict]]: the grade rows of the coil number's tracked coils, newest first."""


class IQualityAdmin(Interface):
    """The admin's tables: rolls and alarm rules."""

    def rolls():
        """Deferred[list[StoredRoll]]."""

    def save_roll(roll_id: int | None, name: str, diameter_mm: float, location: str, notes: str, by: str):
        """Insert (roll_id None) or update: Deferred[(before dict | None, after dict)]; raises
        ports.StoreRefused for a name taken."""

    def delete_roll(roll_id: int):
        """Deferred[dict | None]: the deleted row."""

    def alarm_rules():
        """Deferred[list[dict]]."""

    def save_alarm_rules(rows: list[dict], by: str):
        """Store them (announced on the events channel, so the live watch reloads)."""
