"""The port of coil tracking: where its inputs are read and its results kept (PostgreSQL:
ccl/adapters/storage/tracking_store.py). Times are seconds since the epoch (UTC); every method
returns a Deferred and fails with ports.StoreUnavailable while the database is down."""

from __future__ import annotations

from zope.interface import Interface


class ITrackingStore(Interface):
    def line_data(since: float, until: float | None):
        """Deferred[(LineData, first)]: the telegrams, MES lengths and heartbeats needed to
        track the detections of [since, until) (until None: up to now). The window reaches
        back two welds before ``since`` (the coil under the cameras then had its weld before)
        and on to the second weld after ``until`` (its tail and cut), plus an hour either side
        for late telegrams. ``first``: the earliest weld time whose coil the window holds whole."""

    def detections(since: float, until: float | None):
        """Deferred[list[Detection]]: defects and images whose stamp lies in [since, until),
        widened by the cameras' clock offsets (the caller keeps those whose corrected time fits)."""

    def detections_by_id(defect_ids: list[int], image_ids: list[int]):
        """Deferred[list[Detection]] of those rows (gone ones left out)."""

    def telegrams_by_id(table: str, ids: list[int]):
        """Deferred[list[Telegram]] of rows of tc_4001_cut, tc_4002_wpd or tc_4003_speed."""

    def placements(keys: list[tuple[str, int]]):
        """Deferred[dict[(kind, id), Placement]]: the stored placements of those detections."""

    def save_placements(placements: list):
        """Store (insert or replace) placements, with one ``ccl_events`` event per kind
        (``{"table": "tracking_defects", "count", "tracked_coils"}``); fires once committed."""

    def save_progress(tracked_coil: str, inspected_m: dict):
        """The running coil's metres inspected so far per camera (every speed sample), with the
        event ``{"table": "tracking_coils", "tracked_coil", "inspected_m"}``."""

    def save_coils(coils: list, delays: list, *, coils_between: tuple[float, float | None] | None,
                   delays_between: tuple[float, float | None] | None):
        """Replace the results of these coils (their exit coils too), removing the other coils whose
        head weld lies in ``coils_between`` (since, until or None); and, when ``delays_between``
        is given, the delay log of then with ``delays``."""

    def record_run(kind: str, since: float, until: float, report: dict):
        """Keep what a rebuild changed (tracking_runs)."""


class ITrackingReads(Interface):
    """What the UI reads of tracking (coil map, coil bar, completeness badge, delay log)."""

    def coil(coil_number: str):
        """Deferred[dict | None]: the newest tracked coil of that number (tracking_coils row,
        with ``exit_coils``)."""

    def coil_map(tracked_coil: str, *, kind: str = "defect"):
        """Deferred[list[dict]]: the placements on that coil, by metre (camera, surface, metre,
        uncertainty_m, in_weld_zone, box_coil, coil_disagrees, exit coil and metre, and the
        defect's or image's id)."""

    def delays(since: float, until: float):
        """Deferred[list[dict]]: the delay log entries that began in [since, until)."""

    def disagreements(since: float, until: float):
        """Deferred[list[dict]]: placements of [since, until) whose box coil number disagrees."""


class IPlacementConsumer(Interface):
    """Told by the live tracker what it wrote, after it is committed (the quality watch of
    ccl-defects: roll marks, alarms, grading). Each call returns at once; the consumer queues
    its own work (a fault there never stalls tracking)."""

    def placed(placements: list):
        """Placements written (new, moved or settled), any kind and status."""

    def coils(coils: list):
        """Coil results (domain CoilResult) a recompute wrote."""
