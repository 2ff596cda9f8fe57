"""Backups of the database as pgBackRest reports them, and the decisions taken from them.

Pure: ``pgbackrest info --output=json`` comes in as parsed JSON, the clock as a parameter.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone, tzinfo

import attrs

STANZA = "ccl"
TYPES = ("full", "diff", "incr")


class BackupError(ValueError):
    """A backup request that cannot be carried out; the message tells the operator why."""


@attrs.frozen
class BackupSet:
    label: str
    type: str
    started: datetime
    stopped: datetime
    size: int
    repo_size: int
    wal_start: str
    wal_stop: str
    good: bool


@attrs.frozen
class StanzaInfo:
    status: str
    backups: tuple[BackupSet, ...]
    wal_min: str | None
    wal_max: str | None

    @property
    def good(self) -> tuple[BackupSet, ...]:
        return tuple(b for b in self.backups if b.good)

    def last_good(self) -> BackupSet | None:
        return max(self.good, key=lambda b: b.stopped, default=None)

    def last_full(self) -> BackupSet | None:
        return max((b for b in self.good if b.type == "full"), key=lambda b: b.stopped, default=None)

    def earliest_restorable(self) -> datetime | None:
        """A point in time can be restored from the end of the oldest good backup on: from the
        second after it, as pgBackRest picks a backup that stopped before the target's whole second."""
        return min((b.stopped + timedelta(seconds=1) for b in self.good), default=None)


def _utc(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, timezone.utc)


def parse_info(document: list, stanza: str = STANZA) -> StanzaInfo:
    """The stanza's part of ``pgbackrest info --output=json``."""
    for entry in document:
        if entry.get("name") != stanza:
            continue
        backups = tuple(
            BackupSet(label=b["label"], type=b["type"], started=_utc(b["timestamp"]["start"]),
                      stopped=_utc(b["timestamp"]["stop"]), size=b["info"]["size"],
                      repo_size=b["info"]["repository"]["size"],
                      wal_start=(b.get("archive") or {}).get("start") or "",
                      wal_stop=(b.get("archive") or {}).get("stop") or "",
                      good=not b.get("error", False))
            for b in entry.get("backup", []))
        archives = entry.get("archive") or [{}]
        return StanzaInfo(status=entry.get("status", {}).get("message", "unknown"), backups=backups,
                          wal_min=archives[-1].get("min"), wal_max=archives[-1].get("max"))
    return StanzaInfo(status="missing stanza", backups=(), wal_min=None, wal_max=None)


def choose_type(info: StanzaInfo, now: datetime, full_every: timedelta) -> str:
    """Full when there is none yet or the last one is ``full_every`` old, else differential."""
    last_full = info.last_full()
    if last_full is None or now - last_full.stopped >= full_every:
        return "full"
    return "diff"


def parse_target(text: str, local_zone: tzinfo) -> datetime:
    """An ISO 8601 time (``2026-12-04 18:30:00``, ``...T...+09:00``); without an offset it is
    taken in ``local_zone``, the plant's."""
    try:
        moment = datetime.fromisoformat(text.strip().replace(" ", "T", 1))
    except ValueError:
        raise BackupError(f"cannot read the time {text!r}: write it as 2026-12-04 18:30:00 or"
                          " 2026-12-04T18:30:00+09:00") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=local_zone)
    return moment


def check_target(target: datetime, info: StanzaInfo, now: datetime) -> None:
    """Refuse a time no backup can reach: before the end of the first good backup, or in the future."""
    earliest = info.earliest_restorable()
    if earliest is None:
        raise BackupError("there is no good backup to restore from: run `ccl backup run` first")
    if target < earliest:
        first = min(info.good, key=lambda b: b.stopped)
        raise BackupError(f"{target.isoformat()} is before the first backup: the earliest time that can be"
                          f" restored is {earliest.isoformat()} (just after the end of backup {first.label})")
    if target > now:
        raise BackupError(f"{target.isoformat()} is in the future (now {now.isoformat()})")


def staleness(info: StanzaInfo | None, now: datetime, max_age: timedelta) -> str | None:
    """Why the backups are stale, or None when the last good one is younger than ``max_age``."""
    if info is None:
        return None
    last = info.last_good()
    if last is None:
        return "there is no good backup of the database yet"
    age = now - last.stopped
    if age > max_age:
        return (f"the last good backup ({last.label}) is {age.total_seconds() / 3600:.1f} h old"
                f" (limit {max_age.total_seconds() / 3600:g} h)")
    return None


def pgbackrest_time(moment: datetime) -> str:
    """The form pgBackRest and PostgreSQL read as recovery_target_time, in UTC."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f+00")


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"
