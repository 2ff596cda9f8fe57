"""The line model against hand-computed cases (ccl/domain/tracking): plain values, no I/O.

The line of these tests: the cameras 60 m after the weld point detector (bottom 2 m further
on, its box's clock 1.5 s ahead), the shear 120 m after the cameras; times in seconds from T0.
"""

from __future__ import annotations

import math

from twisted.trial.unittest import SynchronousTestCase

from ccl.domain.tracking.line import SpeedProfile
from ccl.domain.tracking.model import LineModel, moved, track
from ccl.domain.tracking.records import Detection, Heartbeat, LineData, Telegram
from ccl.domain.tracking.settings import Camera, TrackingSettings

T0 = 1_750_000_000.0
SETTINGS = TrackingSettings(
    wpd_to_camera_m=60.0, camera_to_shear_m=120.0,
    cameras=(Camera("top", 0.0, 0.0, "top"), Camera("bottom", 2.0, 1.5, "bottom")),
    weld_zone_m=2.0, max_speed_gap_s=4.5, speed_resolution_mpm=1.0, box_time_uncertainty_s=0.1,
    received_time_uncertainty_s=1.0, telegram_time_uncertainty_s=0.5, scrap_cut_modes=frozenset({2}))
Q = 1.0 / 120.0  # half of 1 m/min, in m/s


def telegram(seq: int, at: float, sent: float | None = None, **values) -> Telegram:
    """A telegram received at T0+at; sent at the same second unless ``sent`` says otherwise."""
    return Telegram(id=seq, sent_at=T0 + math.floor(at if sent is None else sent), received_at=T0 + at, **values)


def speeds(profile, start=0, end=600, every=3) -> list[Telegram]:
    """``profile(t) -> m/min`` sampled every ``every`` s from ``start`` to ``end``."""
    return [telegram(1000 + i, t, line_speed=profile(t)) for i, t in enumerate(range(start, end + 1, every))]


def weld(seq: int, at: float, coil: str, sent: float | None = None) -> Telegram:
    return telegram(seq, at, sent, coil_number=coil)


def defect(n: int, at: float, camera: str = "top", coil: str = "A", box_stamp: bool = True) -> Detection:
    return Detection("defect", n, camera, T0 + at if box_stamp else None, T0 + at + 0.3, coil)


class ConstantSpeed(SynchronousTestCase):
    """120 m/min = 2 m/s throughout; coil A's weld at 30 s, coil B's at 330 s."""

    def setUp(self):
        self.data = LineData(speeds=tuple(speeds(lambda t: 120)), welds=(weld(1, 30, "A"), weld(2, 330, "B")),
                             schedules={"A": 600, "B": 500})
        self.model = LineModel(self.data, SETTINGS)

    def test_head_and_tail_times_and_length(self):
        """At constant speed a coil's length and the times its head and tail pass each camera follow from its welds."""
        a = self.model.coil_results()[0]
        self.assertEqual(a.tracked_coil, "A")
        self.assertAlmostEqual(a.length_m, 600.0)
        self.assertAlmostEqual(a.head_at_camera["top"] - T0, 60.0)  # 60 m at 2 m/s after 30 s
        self.assertAlmostEqual(a.head_at_camera["bottom"] - T0, 61.0)
        self.assertAlmostEqual(a.tail_at_camera["top"] - T0, 360.0)
        self.assertAlmostEqual(a.head_at_shear - T0, 120.0)
        self.assertAlmostEqual(a.tail_at_shear - T0, 420.0)
        self.assertFalse(a.length_disagrees)
        self.assertTrue(a.speed_gap_free)

    def test_defect_metre_and_uncertainty(self):
        """A defect is placed at its metre on the coil, with the uncertainty of speed rounding and the time stamps."""
        p = self.model.place(defect(1, 100))
        self.assertEqual((p.status, p.tracked_coil, p.surface, p.time_source), ("placed", "A", "top", "box"))
        self.assertAlmostEqual(p.metre, 80.0)  # 200 m on the odometer, 60 m back to the detector, head at 60
        # rounding (70 s moving x Q) + 2 m/s x 0.1 s (box stamp) + 2 m/s x 0.5 s (weld telegram)
        self.assertAlmostEqual(p.uncertainty_m, 70 * Q + 0.2 + 1.0)
        self.assertFalse(p.in_weld_zone)
        self.assertFalse(p.coil_disagrees)
        self.assertFalse(p.provisional)

    def test_clock_offset_of_the_camera_is_applied(self):
        """A camera's clock offset and position along the line are applied."""
        # The bottom box's clock is 1.5 s ahead: its 101.5 s is our 100 s; it sits 2 m further on.
        p = self.model.place(defect(2, 101.5, camera="bottom"))
        self.assertAlmostEqual(p.detected_at - T0, 100.0)
        self.assertAlmostEqual(p.metre, 78.0)
        self.assertEqual(p.surface, "bottom")

    def test_received_at_stands_in_for_a_missing_stamp(self):
        """Without the box's stamp, the receive time stands in, with a wider uncertainty."""
        p = self.model.place(defect(3, 100, box_stamp=False))
        self.assertEqual(p.time_source, "received")
        self.assertAlmostEqual(p.metre, 80.6, places=5)  # received 0.3 s later
        self.assertAlmostEqual(p.uncertainty_m, 70.3 * Q + 2.0 + 1.0, places=5)

    def test_weld_zone_and_next_coil(self):
        """Defects near a weld are flagged in the weld zone; past the weld they are on the next coil."""
        near_head = self.model.place(defect(4, 60.5))  # 1 m into A
        self.assertAlmostEqual(near_head.metre, 1.0)
        self.assertTrue(near_head.in_weld_zone)
        near_tail = self.model.place(defect(5, 359.5))  # 1 m before B's weld
        self.assertEqual(near_tail.tracked_coil, "A")
        self.assertTrue(near_tail.in_weld_zone)
        on_b = self.model.place(defect(6, 400, coil="B"))
        self.assertEqual((on_b.tracked_coil, on_b.metre), ("B", 80.0))
        self.assertFalse(on_b.in_weld_zone)

    def test_box_coil_disagreement_is_flagged_and_kept(self):
        """A box naming another coil than the tracked one is flagged, and both are kept."""
        p = self.model.place(defect(7, 100, coil="B"))
        self.assertEqual((p.tracked_coil, p.box_coil, p.coil_disagrees), ("A", "B", True))

    def test_before_the_first_weld_and_unknown_camera(self):
        """Before the first weld there is no coil; an unknown camera or no speed is said so."""
        self.assertEqual(self.model.place(defect(8, 50)).status, "no_coil")  # strip before A's weld
        self.assertEqual(self.model.place(defect(9, 100, camera="side")).status, "unknown_camera")
        self.assertEqual(LineModel(LineData(welds=self.data.welds), SETTINGS).place(defect(10, 100)).status,
                         "no_speed")

    def test_past_the_newest_sample_is_provisional(self):
        """A defect past the newest speed sample is placed provisionally."""
        p = self.model.place(defect(11, 601.5, coil="B"))
        self.assertTrue(p.provisional)
        self.assertAlmostEqual(p.metre, (2 * 601.5 - 60) - 660)  # B's head at 660

    def test_input_order_does_not_matter(self):
        """The order of the speed and weld inputs does not matter."""
        shuffled = LineData(speeds=tuple(reversed(self.data.speeds)), welds=tuple(reversed(self.data.welds)),
                            schedules=self.data.schedules)
        detections = [defect(n, t) for n, t in enumerate((70, 100, 250, 400, 500))]
        self.assertEqual(track(shuffled, detections, SETTINGS, T0 + 600)[0],
                         track(self.data, detections, SETTINGS, T0 + 600)[0])

    def test_length_disagreement(self):
        """A tracked length differing from the schedule's by more than the tolerance is flagged."""
        data = LineData(speeds=self.data.speeds, welds=self.data.welds, schedules={"A": 580})
        self.assertTrue(LineModel(data, SETTINGS).coil_results()[0].length_disagrees)  # 20 m > 5 m
        data = LineData(speeds=self.data.speeds, welds=self.data.welds, schedules={"A": 597})
        self.assertFalse(LineModel(data, SETTINGS).coil_results()[0].length_disagrees)


class Ramp(SynchronousTestCase):
    """From standstill at T0 to 120 m/min at 60 s, linearly (6 m/min every 3 s), then constant."""

    def setUp(self):
        self.data = LineData(speeds=tuple(speeds(lambda t: min(120, 2 * t))), welds=(weld(1, 30, "A"),))
        self.model = LineModel(self.data, SETTINGS)

    def test_position_is_the_exact_integral(self):
        """Under a speed ramp the position is the exact integral of the interpolated speed."""
        p = self.model.profile
        self.assertAlmostEqual(p.position(T0 + 30) - p.position(T0), 15.0)  # x = t^2 / 60
        self.assertAlmostEqual(p.position(T0 + 31) - p.position(T0), 31 * 31 / 60)
        self.assertAlmostEqual(p.time_at(p.position(T0) + 15.0) - T0, 30.0)
        self.assertAlmostEqual(p.position(T0 + 90) - p.position(T0), 60.0 + 60.0)

    def test_defect_after_the_ramp(self):
        """A defect after a ramp is placed by the integral, not by holding each sample."""
        # odometer 120 at 90 s, minus 60 m to the detector, minus the head at 15: metre 45
        # (holding each sample would say 43.5: 1.5 m short after half a ramp).
        p = self.model.place(defect(1, 90))
        self.assertAlmostEqual(p.metre, 45.0)
        # each ramp interval between 30 and 60 s: |0.1 m/s| x 3 s / 2 + Q x 3 s; 60 s to 90 s: Q x 30 s
        expected = 10 * (0.15 + 3 * Q) + 30 * Q + 2.0 * 0.1 + 1.0 * 0.5
        self.assertAlmostEqual(p.uncertainty_m, expected)


class Stops(SynchronousTestCase):
    """2 m/s, stopped from 33 s to 60 s (zero samples), 2 m/s again from 63 s."""

    def setUp(self):
        data = LineData(speeds=tuple(speeds(lambda t: 0 if 33 <= t <= 60 else 120, end=300)),
                        welds=(weld(1, 0, "A"),))
        self.model = LineModel(data, SETTINGS)

    def test_positions_do_not_advance_while_stopped(self):
        """Positions do not advance while the line stands."""
        p = self.model.profile
        self.assertAlmostEqual(p.position(T0 + 33), 63.0)  # 60 m, then 3 m decelerating
        self.assertAlmostEqual(p.position(T0 + 45), 63.0)
        self.assertAlmostEqual(p.position(T0 + 60), 63.0)
        self.assertAlmostEqual(p.position(T0 + 63), 66.0)
        self.assertAlmostEqual(p.time_at(63.0) - T0, 33.0)  # the first moment it got there

    def test_defect_during_the_stop_and_the_delay_log(self):
        """A defect during a stop is placed where the strip stood, and the stop is logged."""
        p = self.model.place(defect(1, 45))
        self.assertAlmostEqual(p.metre, 3.0)
        [stop] = self.model.delays(T0 + 300)
        self.assertEqual((stop.kind, stop.start - T0, stop.end - T0, stop.duration_s), ("stop", 33.0, 60.0, 27.0))
        self.assertEqual(stop.tracked_coil, "A")
        self.assertAlmostEqual(stop.metre, 3.0)

    def test_a_stop_still_on_is_open(self):
        """A stop still on is logged as open."""
        data = LineData(speeds=tuple(speeds(lambda t: 0 if t >= 30 else 120, end=90)), welds=(weld(1, 0, "A"),))
        [stop] = LineModel(data, SETTINGS).delays(T0 + 91)
        self.assertEqual((stop.start - T0, stop.end, stop.duration_s), (30.0, None, 61.0))


class MissingSample(SynchronousTestCase):
    """2 m/s; the sample of 15 s never came (12 s to 18 s: 6 s > 4.5 s)."""

    def setUp(self):
        data = LineData(speeds=tuple(s for s in speeds(lambda t: 120) if s.received_at != T0 + 15),
                        welds=(weld(1, 0, "A"), weld(2, 300, "B")), schedules={"A": 600})
        self.model = LineModel(data, SETTINGS)

    def test_position_interpolated_across_with_a_wider_band(self):
        """Across a missing speed sample the position is interpolated, with a wider uncertainty."""
        p = self.model.place(defect(1, 100))
        self.assertAlmostEqual(p.metre, 140.0)
        # the gap adds max(v) x 6 s / 2 = 6 m to the constant-speed bound
        self.assertAlmostEqual(p.uncertainty_m, 100 * Q + 6.0 + 0.2 + 1.0)

    def test_coil_is_not_gap_free_and_the_gap_is_logged(self):
        """A coil with a speed gap is not gap-free, and the gap is logged."""
        a = self.model.coil_results()[0]
        self.assertFalse(a.speed_gap_free)
        self.assertEqual([(e.kind, e.start - T0, e.end - T0) for e in self.model.delays(T0 + 600)],
                         [("speed_gap", 12.0, 18.0)])
        self.assertTrue(self.model.coil_results()[1].speed_gap_free)  # B came after the gap


class LateWeld(SynchronousTestCase):
    """B's weld passed at 330 s but its telegram came 170 s late (sent 330, received 500)."""

    def test_the_send_time_dates_a_late_telegram(self):
        """A weld telegram arriving late is dated by its send time."""
        on_time = LineModel(LineData(speeds=tuple(speeds(lambda t: 120)),
                                     welds=(weld(1, 30, "A"), weld(2, 330, "B"))), SETTINGS)
        late = LineModel(LineData(speeds=tuple(speeds(lambda t: 120)),
                                  welds=(weld(1, 30, "A"), weld(2, 500, "B", sent=330))), SETTINGS)
        for n, at in enumerate((100, 359, 400, 450)):
            a, b = on_time.place(defect(n, at)), late.place(defect(n, at))
            self.assertEqual(a.tracked_coil, b.tracked_coil)
            self.assertAlmostEqual(a.metre, b.metre)
            # whole seconds of the send time: 0.5 s more at 2 m/s for a defect on B
            self.assertAlmostEqual(b.uncertainty_m - a.uncertainty_m, 1.0 if a.tracked_coil == "B" else 0.0)

    def test_without_the_weld_the_defects_stay_on_a(self):
        """Until the late weld arrives the defects stay on the earlier coil; then they move."""
        before = LineModel(LineData(speeds=tuple(speeds(lambda t: 120)), welds=(weld(1, 30, "A"),)), SETTINGS)
        after = LineModel(LineData(speeds=tuple(speeds(lambda t: 120)),
                                   welds=(weld(1, 30, "A"), weld(2, 500, "B", sent=330))), SETTINGS)
        p, q = before.place(defect(1, 400)), after.place(defect(1, 400))
        self.assertEqual((p.tracked_coil, p.metre), ("A", 680.0))
        self.assertEqual((q.tracked_coil, q.metre), ("B", 80.0))
        self.assertTrue(moved(p, q))
        self.assertFalse(moved(q, after.place(defect(1, 400))))


class ExitCut(SynchronousTestCase):
    """Coil A (head at odometer 60, 600 m) cut into two exit coils, cropped 5 m at head and tail.

    Cuts at odometer (detector reference) 65 (mode 2: crop), 365 (A, 300 m), 655 (A, winding
    length 280 while 290 m were cut) and 665 (mode 2: the crop around the weld at 660).
    A cut at reference x happens when x reaches the shear 180 m on: at (x + 180) / 2 s.
    """

    def setUp(self):
        cuts = (telegram(11, 122.5, coil_number="A", cut_mode=2),
                telegram(12, 272.5, coil_number="A", cut_mode=1, winding_length=300),
                telegram(13, 417.5, coil_number="A", cut_mode=1, winding_length=280),
                telegram(14, 422.5, coil_number="B", cut_mode=2))
        self.data = LineData(speeds=tuple(speeds(lambda t: 120)), welds=(weld(1, 30, "A"), weld(2, 330, "B")),
                             cuts=cuts, schedules={"A": 600})
        self.model = LineModel(self.data, SETTINGS)

    def test_defects_remapped_onto_the_exit_coils(self):
        """Defects are remapped onto the exit coils between cuts; crops are scrap."""
        first = self.model.place(defect(1, 130))  # odometer x 200: A metre 140
        self.assertEqual((first.tracked_coil, first.metre, first.exit_coil, first.exit_piece), ("A", 140.0, "A", 1))
        self.assertAlmostEqual(first.exit_metre, 135.0)
        second = self.model.place(defect(2, 230))  # x 400
        self.assertEqual((second.exit_piece, second.exit_metre), (2, 35.0))
        crop = self.model.place(defect(3, 359.75))  # x 659.5, in the weld crop
        self.assertEqual((crop.tracked_coil, crop.exit_coil, crop.exit_scrap, crop.in_weld_zone), ("A", None, True, True))
        head_crop = self.model.place(defect(4, 62))  # x 64: before the first cut, nothing known
        self.assertEqual((head_crop.exit_coil, head_crop.exit_piece), (None, None))

    def test_coil_result_lists_its_exit_coils_and_crops(self):
        """A coil's result lists its exit coils with their spans and length checks."""
        a = self.model.coil_results()[0]
        self.assertTrue(a.cut_seen)
        self.assertEqual([(e.piece, e.coil_number, round(e.start_m, 6), round(e.end_m, 6), e.length_disagrees)
                          for e in a.exit_coils], [(1, "A", 5.0, 305.0, False), (2, "A", 305.0, 595.0, True)])
        self.assertAlmostEqual(a.head_crop_m, 5.0)
        self.assertAlmostEqual(a.tail_crop_m, 5.0)
        self.assertTrue(a.length_disagrees)  # exit coil 2: 290 m cut, 280 m reported

    def test_cut_without_a_previous_cut_starts_its_winding_length_back(self):
        """A cut with no previous cut starts its winding length back from itself."""
        data = LineData(speeds=self.data.speeds, welds=self.data.welds, cuts=self.data.cuts[1:2])
        p = LineModel(data, SETTINGS).place(defect(1, 130))
        self.assertEqual((p.exit_coil, p.exit_piece), ("A", 1))
        self.assertAlmostEqual(p.exit_metre, 135.0)


class Completeness(SynchronousTestCase):
    """Coil A passes the top camera from 60 s to 360 s (600 m), the bottom one from 61 s to 361 s."""

    def data(self, heartbeats=()):
        cuts = (telegram(11, 120, coil_number="A", cut_mode=1), telegram(12, 420, coil_number="A", cut_mode=1,
                                                                        winding_length=600))
        return LineData(speeds=tuple(speeds(lambda t: 120)), welds=(weld(1, 30, "A"), weld(2, 330, "B")),
                        cuts=cuts, schedules={"A": 600}, heartbeats=tuple(heartbeats))

    def test_without_heartbeats_coverage_is_unknown(self):
        """Without heartbeats a coil's camera coverage, and so its completeness, is unknown."""
        a = LineModel(self.data(), SETTINGS).coil_results()[0]
        self.assertEqual(a.coverage, {"top": None, "bottom": None})
        self.assertEqual((a.schedule_present, a.wpd_seen, a.speed_gap_free, a.cut_seen), (True, True, True, True))
        self.assertEqual(a.completeness, "unknown")

    def test_a_camera_gap_makes_it_partial(self):
        """A camera gap gives that camera partial coverage and the coil is partial."""
        beats = [Heartbeat("top", T0 + 50, T0 + 200, 100, 100), Heartbeat("top", T0 + 200, T0 + 260, 0, 100),
                 Heartbeat("top", T0 + 260, T0 + 400, 50, 50), Heartbeat("bottom", T0, T0 + 600, 3000, 3000)]
        a = LineModel(self.data(beats), SETTINGS).coil_results()[0]
        self.assertAlmostEqual(a.coverage["top"], 480 / 600)  # 60-200 s and 260-360 s, 2 m/s
        self.assertAlmostEqual(a.coverage["bottom"], 1.0)
        self.assertEqual(a.completeness, "partial")

    def test_heartbeat_periods_are_corrected_by_the_box_clock(self):
        """Heartbeat periods are corrected by the box's clock offset before coverage is reckoned."""
        # The bottom box's clock runs 1.5 s ahead: its 62.5-362.5 s is our 61-361 s, the coil's passage.
        beats = [Heartbeat("top", T0, T0 + 600, 10, 10), Heartbeat("bottom", T0 + 62.5, T0 + 362.5, 10, 10)]
        a = LineModel(self.data(beats), SETTINGS).coil_results()[0]
        self.assertAlmostEqual(a.coverage["bottom"], 1.0)
        self.assertEqual(a.completeness, "complete")

    def test_full_coverage_is_complete_and_a_running_coil_is_running(self):
        """Full coverage makes a coil complete; a coil whose tail has not come is running."""
        beats = [Heartbeat(c, T0, T0 + 600, 10, 10) for c in ("top", "bottom")]
        a, b = LineModel(self.data(beats), SETTINGS).coil_results()
        self.assertEqual(a.completeness, "complete")
        self.assertEqual(b.completeness, "running")  # its tail never came
        self.assertFalse(b.wpd_seen)
        self.assertAlmostEqual(b.inspected_m["top"], 2 * 600 - 60 - 660)


class Profile(SynchronousTestCase):
    def test_append_matches_a_profile_built_at_once(self):
        """A speed profile grown sample by sample equals one built at once; going back in time is refused."""
        samples = [(T0 + 3 * i, (i * 7) % 130) for i in range(100)]
        whole = SpeedProfile(samples, max_gap_s=4.5)
        grown = SpeedProfile(samples[:10], max_gap_s=4.5)
        for at, v in samples[10:]:
            grown.append(at, v)
        for t in (T0 + 1, T0 + 100.5, T0 + 297):
            self.assertAlmostEqual(whole.position(t), grown.position(t))
            self.assertAlmostEqual(whole.error(t), grown.error(t))
        self.assertRaises(ValueError, grown.append, T0, 10)


class Settings(SynchronousTestCase):
    def test_from_the_packaged_ini_and_overrides(self):
        """Tracking settings come from the packaged ini, overridden by variables; bad values are refused."""
        from ccl.config import ConfigError, load_config

        settings = TrackingSettings.from_config(load_config({}))
        self.assertEqual([c.camera_id for c in settings.cameras], ["top", "bottom"])
        config = load_config({"CCL_TRACKING_CAMERA_OFFSETS_M": "bottom:1.5",
                              "CCL_TRACKING_CAMERA_CLOCK_OFFSETS_S": "top:-0.25", "CCL_TRACKING_SCRAP_CUT_MODES": "2, 3"})
        settings = TrackingSettings.from_config(config)
        self.assertEqual(settings.camera("bottom").offset_m, 1.5)
        self.assertEqual(settings.camera("top").clock_offset_s, -0.25)
        self.assertEqual(settings.scrap_cut_modes, frozenset({2, 3}))
        self.assertEqual(settings.shear_distance, 250.0)
        for bad in ({"CCL_TRACKING_CAMERA_OFFSETS_M": "side:1"}, {"CCL_TRACKING_CAMERA_OFFSETS_M": "top=1"},
                    {"CCL_TRACKING_CAMERA_CLOCK_OFFSETS_S": "top:soon"}, {"CCL_TRACKING_CAMERAS": ""}):
            self.assertRaises(ConfigError, TrackingSettings.from_config, load_config(bad))
