"""A line for the tracking tests, written straight into the telegram tables (with the NOTIFY the
MES service sends for each stored row), and the settings that go with it.

The line: cameras 60 m after the weld point detector, the shear 120 m after them, 120 m/min.
"""

from __future__ import annotations

import math

from ccl.domain.tracking.settings import Camera, TrackingSettings

SETTINGS = TrackingSettings(wpd_to_camera_m=60.0, camera_to_shear_m=120.0,
                            cameras=(Camera("top", 0.0, 0.0, "top"), Camera("bottom", 2.0, 0.0, "bottom")))
ENV = {"CCL_TRACKING_WPD_TO_CAMERA_M": "60", "CCL_TRACKING_CAMERA_TO_SHEAR_M": "120",
       "CCL_TRACKING_CAMERA_OFFSETS_M": "top:0, bottom:2"}

_VALUES = {"tc_4003_speed": ("line_speed",), "tc_4002_wpd": ("coil_number",),
           "tc_4001_cut": ("coil_number", "cut_mode", "winding_length"), "tc_4000_schedule": ("coil_number", "length_value")}


class Line:
    """Writes telegrams with psycopg2 (autocommit ``connection``); sequence numbers count up."""

    def __init__(self, connection, t0: float):
        self.connection = connection
        self.t0 = t0
        self.seq = 0

    def telegram(self, table: str, at: float, sent: float | None = None, notify: bool = True, **values) -> int:
        """A row received at t0 + at, sent (whole seconds) at t0 + ``sent`` (default: ``at``);
        announced on ccl_events unless ``notify`` is false."""
        self.seq += 1
        names = _VALUES[table]
        with self.connection.cursor() as cursor:
            cursor.execute(
                f"WITH ins AS (INSERT INTO {table} (line_code, sequence_no, sent_at, received_at, {', '.join(names)}, raw)"
                f" VALUES ('CCL1', %s, to_timestamp(%s), to_timestamp(%s), {', '.join(['%s'] * len(names))}, %s)"
                f" RETURNING id, tc_code)"
                f" SELECT id, CASE WHEN %s THEN pg_notify('ccl_events', json_build_object('table', %s, 'id', id,"
                f" 'tc_code', tc_code)::text) END FROM ins",
                (self.seq, math.floor(self.t0 + (at if sent is None else sent)), self.t0 + at,
                 *(values[n] for n in names), str(self.seq).encode(), notify, table))
            return cursor.fetchone()[0]

    def speeds(self, start: float, end: float, mpm: int = 120, every: float = 3.0, notify: bool = True) -> None:
        at = start
        while at <= end + 1e-9:
            self.telegram("tc_4003_speed", at, notify=notify, line_speed=mpm)
            at += every

    def weld(self, at: float, coil: str, sent: float | None = None, notify: bool = True) -> int:
        return self.telegram("tc_4002_wpd", at, sent, notify, coil_number=coil)

    def schedule(self, at: float, coil: str, length: int) -> int:
        with self.connection.cursor() as cursor:
            self.seq += 1
            cursor.execute("INSERT INTO tc_4000_schedule (line_code, sequence_no, sent_at, received_at, coil_number,"
                           " length_value, raw) VALUES ('CCL1', %s, to_timestamp(%s), to_timestamp(%s), %s, %s, %s)"
                           " RETURNING id", (self.seq, math.floor(self.t0 + at), self.t0 + at, coil, length,
                                              str(self.seq).encode()))
            return cursor.fetchone()[0]

    def defect(self, at: float, coil: str, camera: str = "top") -> int:
        """A defect the box stamped at t0 + at (stored without a NOTIFY: for recompute tests)."""
        with self.connection.cursor() as cursor:
            cursor.execute("INSERT INTO defect_detections (coil_number, defect_type, confidence_score, severity,"
                           " detection_time, received_at, camera_id) VALUES (%s, 'scratch', 0.9, 'high',"
                           " to_timestamp(%s), to_timestamp(%s), %s) RETURNING id",
                           (coil, self.t0 + at, self.t0 + at + 0.2, camera))
            return cursor.fetchone()[0]


def true_metre(at: float, start: float, weld_at: float, camera_m: float = 60.0, mps: float = 2.0) -> float:
    """At constant speed from ``start``: the metre from the head of the coil whose weld passed at ``weld_at``."""
    return mps * (at - weld_at) - camera_m
