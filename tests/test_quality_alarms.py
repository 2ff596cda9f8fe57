"""Live defect alarms: clusters, densities, roll marks and silent cameras."""

from datetime import datetime, timedelta, timezone

from twisted.trial.unittest import SynchronousTestCase

from ccl.domain.quality.alarms import AlarmRule, AlarmWatch, PlacedEvent, parse_rules

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=timezone.utc)


def defect(n, position, severity="critical", defect_type="dent", coil="C1", camera="top"):
    return PlacedEvent(n, coil, position, defect_type, severity, camera)


class ClusterTests(SynchronousTestCase):
    rule = AlarmRule("3 critical in 50 m", "critical_cluster", count=3, window_m=50.0)

    def test_three_critical_defects_within_the_window_raise_one_alarm(self):
        """The third critical defect within 50 m raises the alarm naming all three; the fourth adds none."""
        watch = AlarmWatch([self.rule])
        self.assertEqual(watch.defects([defect(1, 100.0), defect(2, 120.0)]), [])
        alarms = watch.defects([defect(3, 149.0)])
        self.assertEqual([(a.rule, a.defect_ids) for a in alarms], [("3 critical in 50 m", (1, 2, 3))])
        self.assertEqual(watch.defects([defect(4, 150.0)]), [])

    def test_spread_out_or_lesser_defects_raise_nothing(self):
        """Three critical defects 60 m apart, or three high ones close together, are no cluster."""
        watch = AlarmWatch([self.rule])
        self.assertEqual(watch.defects([defect(1, 0.0), defect(2, 60.0), defect(3, 120.0)]), [])
        self.assertEqual(watch.defects([defect(n, 200.0 + n, "high") for n in range(4, 8)]), [])

    def test_a_later_cluster_on_the_same_coil_alarms_again_and_coils_are_apart(self):
        """A second cluster past the first alarms again; the same positions on another coil are their own."""
        watch = AlarmWatch([self.rule])
        first = watch.defects([defect(n, 10.0 + n) for n in range(3)])
        second = watch.defects([defect(n, 500.0 + n) for n in range(3, 6)])
        other = watch.defects([defect(n, 10.0 + n, coil="C2") for n in range(6, 9)])
        self.assertEqual([len(a) for a in (first, second, other)], [1, 1, 1])
        self.assertTrue(other[0].key.startswith("C2@"))

    def test_out_of_order_arrival_still_sees_the_cluster(self):
        """Defects placed out of lengthwise order (a re-placement) form the same cluster."""
        watch = AlarmWatch([self.rule])
        alarms = watch.defects([defect(1, 140.0), defect(2, 100.0), defect(3, 120.0)])
        self.assertEqual(alarms[0].defect_ids, (2, 3, 1))


class DensityTests(SynchronousTestCase):
    def test_a_types_density_over_the_threshold_alarms(self):
        """Five scratches within 20 m is 25 per 100 m, the threshold: alarm at the fifth; dents do not count."""
        rule = AlarmRule("scratch density", "density", severity="high", defect_type="scratch",
                         window_m=20.0, per_100m=25.0)
        watch = AlarmWatch([rule])
        self.assertEqual(watch.defects([defect(n, 3.0 * n, "low", "dent") for n in range(10)]), [])
        self.assertEqual(watch.defects([defect(n, 3.0 * (n - 10), "low", "scratch") for n in range(10, 14)]), [])
        alarms = watch.defects([defect(14, 12.5, "low", "scratch")])
        self.assertEqual([(a.kind, a.severity) for a in alarms], [("density", "high")])


class PeriodicAndCameraTests(SynchronousTestCase):
    def test_a_confirmed_series_alarms_once_naming_the_roll(self):
        """A roll-mark series alarms once, with its pitch and roll; confirming it again adds nothing."""
        watch = AlarmWatch([AlarmRule("roll mark", "periodic")])
        alarms = watch.series_confirmed("C1", "scratch", 2.513, (1, 2, 3, 4, 5), "BR-1")
        self.assertEqual(len(alarms), 1)
        self.assertIn("2.513", alarms[0].message)
        self.assertIn("BR-1", alarms[0].message)
        self.assertEqual(watch.series_confirmed("C1", "scratch", 2.513, (1, 2, 3, 4, 5, 6), "BR-1"), [])

    def test_a_camera_silent_while_the_line_runs_alarms_once_until_heard_again(self):
        """Silent 61 s with the line running: one alarm; none while stopped; heard again re-arms it."""
        watch = AlarmWatch([AlarmRule("camera silent", "camera_silent", silent_s=60.0)])
        watch.camera_seen("top", T0)
        watch.camera_seen("bottom", T0)
        self.assertEqual(watch.tick(T0 + timedelta(seconds=30), True, ["top", "bottom"]), [])
        watch.camera_seen("bottom", T0 + timedelta(seconds=50))
        self.assertEqual(watch.tick(T0 + timedelta(seconds=61), False, ["top", "bottom"]), [])
        alarms = watch.tick(T0 + timedelta(seconds=61), True, ["top", "bottom"])
        self.assertEqual([a.key for a in alarms], ["camera:top"])
        self.assertEqual(watch.tick(T0 + timedelta(seconds=90), True, ["top"]), [])
        watch.camera_seen("top", T0 + timedelta(seconds=100))
        self.assertEqual(len(watch.tick(T0 + timedelta(seconds=200), True, ["top"])), 1)

    def test_a_camera_never_heard_is_silent(self):
        """An expected camera that never sent anything alarms as 'never seen'."""
        alarms = AlarmWatch([AlarmRule("camera silent", "camera_silent")]).tick(T0, True, ["bottom"])
        self.assertIn("never seen", alarms[0].message)


class RuleTests(SynchronousTestCase):
    def test_rules_are_read_from_their_stored_form_and_bad_ones_refused(self):
        """Stored rows become rules (unknown keys ignored); a bad kind or severity is refused."""
        rules = parse_rules([{"name": "a", "kind": "density", "per_100m": 5, "comment": "x"}])
        self.assertEqual(rules[0].per_100m, 5)
        self.assertRaises(ValueError, parse_rules, [{"name": "b", "kind": "loud"}])
        self.assertRaises(ValueError, parse_rules, [{"name": "c", "kind": "density", "severity": "awful"}])
        self.assertRaises(ValueError, parse_rules, [{"name": "d", "kind": "density", "window_m": 0}])
