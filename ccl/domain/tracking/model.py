"""One window of line data as a model: place detections, tell each coil's story, log delays.

Uncertainty of a placement (metres), a bound, not a standard deviation; the terms add up:

    u = [E(t_d) - E(t_w)]            integration error between the coil's weld passing the
                                     detector (t_w) and the detection (t_d): line.py
      + v(t_d) * dt_detection        the detection time's uncertainty: box_time_uncertainty_s
                                     for a box stamp, received_time_uncertainty_s for receipt
      + v(t_w) * dt_weld             the weld time's uncertainty: telegram_time_uncertainty_s,
                                     plus 0.5 s (whole seconds of the send time) when late

with v the line speed (m/s) at that moment. At constant speed and a box clock known to
0.1 s this is a few decimetres; it grows along a ramp, across a gap and past the newest sample.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence

import attrs

from ccl.domain.tracking import completeness
from ccl.domain.tracking.coils import Cut, Piece, coil_at, coil_spans, pieces
from ccl.domain.tracking.line import SpeedProfile
from ccl.domain.tracking.records import (
    CoilResult, DelayEntry, Detection, ExitCoil, Heartbeat, LineData, Placement, Telegram,
)
from ccl.domain.tracking.settings import TrackingSettings
from ccl.domain.tracking.times import event_time, mes_offset

#: Stored with every result: results of another version may differ for the same data.
MODEL_VERSION = 1
#: A placement counts as moved when its metre changes by more than this (floating noise aside).
MOVED_M = 0.001
_SEND_RESOLUTION_S = 0.5


class LineModel:
    def __init__(self, data: LineData, settings: TrackingSettings):
        self.settings = settings
        self.data = data
        self.offset = mes_offset([*data.speeds, *data.welds, *data.cuts])
        #: ids of the telegrams the model holds, by kind ("speed", "weld", "cut")
        self.known_ids = {"speed": {t.id for t in data.speeds}, "weld": {t.id for t in data.welds},
                          "cut": {t.id for t in data.cuts}}
        samples = []
        for telegram in data.speeds:
            at, _late = event_time(telegram, self.offset, settings.late_after_s)
            samples.append((at, telegram.line_speed))
        self.profile = SpeedProfile(samples, max_gap_s=settings.max_speed_gap_s,
                                    resolution_mpm=settings.speed_resolution_mpm)
        self._first_camera = min(settings.cameras, key=settings.camera_distance)
        self._welds = sorted(data.welds, key=lambda w: (event_time(w, self.offset, settings.late_after_s)[0], w.id))
        self._cuts = sorted(data.cuts, key=lambda c: (event_time(c, self.offset, settings.late_after_s)[0], c.id))
        self._locate()

    # building --------------------------------------------------------------------------

    def _timed(self, telegram: Telegram) -> tuple[float, float]:
        at, late = event_time(telegram, self.offset, self.settings.late_after_s)
        return at, self.settings.telegram_time_uncertainty_s + (_SEND_RESOLUTION_S if late else 0.0)

    def _locate(self) -> None:
        """Odometer readings of the welds and cuts (again after new speed samples)."""
        welds = [(*self._timed(w), w.coil_number or "") for w in self._welds]
        self.coils = coil_spans([(at, number, u) for at, u, number in welds])
        has_speed = len(self.profile) > 0
        for coil in self.coils:
            coil.head_x = self.profile.position(coil.head_at) if has_speed else 0.0
            coil.tail_x = self.profile.position(coil.tail_at) if has_speed and coil.tail_at is not None else None
        self.heads = [c.head_x for c in self.coils]
        shear = self.settings.shear_distance
        self.cuts = [Cut(at, (self.profile.position(at) - shear) if has_speed else 0.0, c.coil_number or "",
                         c.cut_mode, c.winding_length)
                     for c, (at, _u) in ((c, self._timed(c)) for c in self._cuts)]
        self.pieces: list[Piece] = pieces(self.cuts, self.heads) if has_speed else []
        self._piece_ends = [p.end_x for p in self.pieces]

    def add_speed(self, telegram: Telegram) -> bool:
        """Take a new speed sample at the live edge; False when it is not the newest (or its
        MES clock disagrees) and the model must be built again from the data."""
        at, late = event_time(telegram, self.offset, self.settings.late_after_s)
        last = self.profile.last_time
        if late or telegram.line_speed is None or (last is not None and at < last):
            return False
        self.profile.append(at, telegram.line_speed)
        self.known_ids["speed"].add(telegram.id)
        self.data = LineData(speeds=(*self.data.speeds, telegram), welds=self.data.welds, cuts=self.data.cuts,
                             schedules=self.data.schedules, heartbeats=self.data.heartbeats)
        self._locate()
        return True

    # placement -------------------------------------------------------------------------

    def place(self, d: Detection) -> Placement:
        s = self.settings
        camera = s.camera(d.camera_id)
        if d.captured_at is not None:
            detected_at = d.captured_at - (camera.clock_offset_s if camera else 0.0)
            source, dt_detection = "box", s.box_time_uncertainty_s
        else:
            detected_at, source, dt_detection = d.received_at, "received", s.received_time_uncertainty_s
        common = dict(kind=d.kind, id=d.id, camera_id=d.camera_id, detected_at=detected_at,
                      time_source=source, box_coil=d.box_coil, received_at=d.received_at)
        if camera is None:
            return Placement(surface=None, status="unknown_camera", **common)
        if not len(self.profile):
            return Placement(surface=camera.surface, status="no_speed", **common)
        profile = self.profile
        x = profile.position(detected_at) - s.camera_distance(camera)
        k = coil_at(self.heads, x)
        if k < 0:
            return Placement(surface=camera.surface, status="no_coil", **common)
        coil = self.coils[k]
        metre = x - coil.head_x
        uncertainty = (abs(profile.error(detected_at) - profile.error(coil.head_at))
                       + profile.speed(detected_at) * dt_detection
                       + profile.speed(coil.head_at) * coil.head_time_uncertainty_s)
        weld_zone = metre < s.weld_zone_m or (coil.tail_x is not None and coil.tail_x - x < s.weld_zone_m)
        exit_coil = exit_piece = exit_metre = None
        scrap = False
        piece = self._piece_at(x)
        if piece is not None and piece.mother >= 0:
            exit_coil, exit_piece, exit_metre = piece.cut.coil_number, piece.piece, x - piece.start_x
            scrap = piece.cut.cut_mode in s.scrap_cut_modes
            if scrap:
                exit_coil = None
        disagrees = d.box_coil not in (coil.coil_number, exit_coil)
        return Placement(surface=camera.surface, status="placed", tracked_coil=coil.tracked_coil, metre=metre,
                         uncertainty_m=uncertainty, in_weld_zone=weld_zone, coil_disagrees=disagrees,
                         exit_coil=exit_coil, exit_piece=exit_piece, exit_metre=exit_metre, exit_scrap=scrap,
                         provisional=detected_at > profile.last_time, **common)

    def _piece_at(self, x: float) -> Piece | None:
        i = bisect_right(self._piece_ends, x)
        if i >= len(self.pieces):
            return None
        piece = self.pieces[i]
        if x < piece.start_x:
            return None
        return piece

    def place_all(self, detections: Iterable[Detection]) -> list[Placement]:
        return [self.place(d) for d in detections]

    # coils -----------------------------------------------------------------------------

    def _reached(self, x: float) -> float | None:
        """When the strip point at odometer ``x`` got there, if the data says so (not a forecast)."""
        if not len(self.profile):
            return None
        at = self.profile.time_at(x)
        return at if at is not None and at <= self.profile.last_time else None

    def coil_results(self) -> list[CoilResult]:
        s = self.settings
        profile = self.profile
        by_mother: dict[int, list[Piece]] = {}
        for piece in self.pieces:
            by_mother.setdefault(piece.mother, []).append(piece)
        cut_names = {c.coil_number for c in self.cuts}
        heartbeats: dict[str, list[Heartbeat]] = {}
        for h in self.data.heartbeats:
            camera = s.camera(h.camera_id)
            if camera is None:
                continue
            # the box's periods are on its own clock: onto ours, as its detections are
            shift = camera.clock_offset_s
            heartbeats.setdefault(h.camera_id, []).append(
                attrs.evolve(h, period_start=h.period_start - shift, period_end=h.period_end - shift) if shift else h)
        results = []
        for k, coil in enumerate(self.coils):
            has_speed = len(profile) > 0
            cams = {c.camera_id: s.camera_distance(c) for c in s.cameras}
            head_cam = {cid: self._reached(coil.head_x + d) if has_speed else None for cid, d in cams.items()}
            tail_cam = {cid: (self._reached(coil.tail_x + d) if has_speed and coil.tail_x is not None else None)
                        for cid, d in cams.items()}
            head_shear = self._reached(coil.head_x + s.shear_distance) if has_speed else None
            tail_shear = (self._reached(coil.tail_x + s.shear_distance)
                          if has_speed and coil.tail_x is not None else None)
            length = length_u = None
            if coil.tail_x is not None and has_speed:
                length = coil.tail_x - coil.head_x
                length_u = (abs(profile.error(coil.tail_at) - profile.error(coil.head_at))
                            + profile.speed(coil.head_at) * coil.head_time_uncertainty_s
                            + profile.speed(coil.tail_at) * coil.tail_time_uncertainty_s)
            inspected = self.inspected(coil)
            mes = self.data.schedules.get(coil.coil_number)
            exits = tuple(self._exit_coil(coil, p) for p in by_mother.get(k, []))
            mother_disagrees = length is not None and mes is not None and abs(length - mes) > s.length_tolerance(mes)
            coverage = {}
            for cid in cams:
                start = head_cam[cid]
                end = tail_cam[cid] if tail_cam[cid] is not None else (profile.last_time if has_speed else None)
                coverage[cid] = (None if start is None or end is None or end < start else
                                 completeness.coverage(heartbeats.get(cid, ()), start, end, profile.position))
            gap_end = tail_shear if tail_shear is not None else profile.last_time
            gap_free = has_speed and gap_end is not None and profile.gap_free(coil.head_at, gap_end)
            schedule_present = coil.coil_number in self.data.schedules
            wpd_seen = coil.tail_at is not None
            cut_seen = bool(by_mother.get(k)) or coil.coil_number in cut_names
            usable = [p for p in by_mother.get(k, []) if p.cut.cut_mode not in s.scrap_cut_modes]
            head_crop = max(0.0, usable[0].start_x - coil.head_x) if usable else None
            tail_crop = (max(0.0, coil.tail_x - usable[-1].end_x) if usable and coil.tail_x is not None
                         and tail_shear is not None else None)
            results.append(CoilResult(
                tracked_coil=coil.tracked_coil, coil_number=coil.coil_number, head_wpd_at=coil.head_at,
                tail_wpd_at=coil.tail_at, head_at_camera=head_cam, tail_at_camera=tail_cam,
                head_at_shear=head_shear, tail_at_shear=tail_shear, length_m=length, length_uncertainty_m=length_u,
                inspected_m=inspected, mes_length_m=mes,
                length_disagrees=mother_disagrees or any(e.length_disagrees for e in exits if not e.scrap),
                schedule_present=schedule_present, wpd_seen=wpd_seen, speed_gap_free=gap_free, cut_seen=cut_seen,
                coverage=coverage,
                completeness=completeness.verdict(finished=tail_shear is not None,
                                                  checks=(schedule_present, wpd_seen, gap_free, cut_seen),
                                                  coverage_by_camera=coverage),
                head_crop_m=head_crop, tail_crop_m=tail_crop, exit_coils=exits))
        return results

    def inspected(self, coil) -> dict[str, float]:
        """Metres of ``coil`` that passed each camera by the newest speed sample."""
        if not len(self.profile):
            return {c.camera_id: 0.0 for c in self.settings.cameras}
        now_x = self.profile.position(self.profile.last_time)
        end = coil.tail_x if coil.tail_x is not None else float("inf")
        return {c.camera_id: max(0.0, min(now_x - self.settings.camera_distance(c), end) - coil.head_x)
                for c in self.settings.cameras}

    def _exit_coil(self, coil, piece: Piece) -> ExitCoil:
        s = self.settings
        start, end = piece.start_x - coil.head_x, piece.end_x - coil.head_x
        winding = piece.cut.winding_length
        disagrees = winding is not None and abs((end - start) - winding) > s.length_tolerance(winding)
        return ExitCoil(tracked_coil=coil.tracked_coil, piece=piece.piece, coil_number=piece.cut.coil_number,
                        start_m=start, end_m=end,
                        cut_at=piece.cut.at, cut_mode=piece.cut.cut_mode, winding_length=winding,
                        scrap=piece.cut.cut_mode in s.scrap_cut_modes, length_disagrees=disagrees)

    # delay log -------------------------------------------------------------------------

    def delays(self, now: float) -> list[DelayEntry]:
        """Line stops and speed gaps, each with the coil and metre under the first camera."""
        if not len(self.profile):
            return []
        entries = []
        d = self.settings.camera_distance(self._first_camera)
        for interval in [*self.profile.stops(), *self.profile.gaps(now)]:
            x = self.profile.position(interval.start) - d
            k = coil_at(self.heads, x)
            end = interval.end if interval.end is not None else now
            entries.append(DelayEntry(interval.kind, interval.start, interval.end, max(0.0, end - interval.start),
                                      self.coils[k].tracked_coil if k >= 0 else None,
                                      x - self.coils[k].head_x if k >= 0 else None))
        return sorted(entries, key=lambda e: (e.start, e.kind))


def moved(before: Placement | None, after: Placement) -> bool:
    """The placement changed in what a reader sees (coil, metre, exit coil, status, flags)."""
    if before is None:
        return True
    if (before.status, before.tracked_coil, before.exit_coil, before.exit_piece, before.in_weld_zone,
            before.coil_disagrees, before.provisional, before.exit_scrap) != (
            after.status, after.tracked_coil, after.exit_coil, after.exit_piece, after.in_weld_zone,
            after.coil_disagrees, after.provisional, after.exit_scrap):
        return True
    return any(_differs(a, b) for a, b in ((before.metre, after.metre), (before.exit_metre, after.exit_metre),
                                             (before.uncertainty_m, after.uncertainty_m)))


def _differs(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return (a is None) != (b is None)
    return abs(a - b) > MOVED_M


def track(data: LineData, detections: Sequence[Detection], settings: TrackingSettings, now: float):
    """Everything for one window: (placements, coil results, delay log)."""
    model = LineModel(data, settings)
    return model.place_all(detections), model.coil_results(), model.delays(now)
