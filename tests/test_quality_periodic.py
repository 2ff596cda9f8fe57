"""Roll-mark (periodic defect) detection on hand-made and generated series."""

import random

from twisted.trial.unittest import SynchronousTestCase

from ccl.domain.quality.periodic import (
    PeriodicSettings, PeriodicWatch, PlacedDefect, Roll, detect_series, likely_roll)
from ccl.domain.quality.synthetic import CoilRecipe, labelled_coil

SETTINGS = PeriodicSettings()


def marks(first_id, start, pitch, count, cross, missing=(), defect_type="scratch", surface="top", jitter=()):
    """A hand-made series: ``count`` places from ``start``; the places in ``missing`` left empty."""
    out = []
    for place in range(count):
        if place in missing:
            continue
        shift = jitter[place % len(jitter)] if jitter else 0.0
        out.append(PlacedDefect(first_id + place, defect_type, start + place * pitch + shift, cross, surface))
    return out


def clutter(first_id, count, length, width, seed, defect_type="scratch", surface="top"):
    rng = random.Random(seed)
    return [PlacedDefect(first_id + n, defect_type, rng.uniform(0, length), rng.uniform(0, width), surface)
            for n in range(count)]


class DetectSeriesTests(SynchronousTestCase):
    def test_a_series_with_misses_is_found_with_its_pitch_and_only_its_members(self):
        """Ten places at 2.0 m with two empty: one series of eight at pitch 2.0 m, nothing else."""
        series_marks = marks(1, 100.0, 2.0, 10, 500.0, missing={3, 7}, jitter=(0.01, -0.012, 0.004))
        strays = [PlacedDefect(100, "scratch", 105.0, 500.0), PlacedDefect(101, "scratch", 109.9, 800.0)]
        found = detect_series(series_marks + strays, SETTINGS)
        self.assertEqual(len(found), 1)
        self.assertEqual(set(found[0].member_ids), {d.defect_id for d in series_marks})
        self.assertLessEqual(abs(found[0].pitch_m - 2.0), 0.01)
        self.assertEqual(found[0].expected, 10)
        self.assertEqual((found[0].start_m, found[0].end_m), (series_marks[0].position_m, series_marks[-1].position_m))

    def test_too_few_marks_are_no_series(self):
        """Four marks at one pitch are not enough (min_members 5)."""
        self.assertEqual(detect_series(marks(1, 0.0, 1.5, 4, 300.0), SETTINGS), [])

    def test_a_sparse_series_is_refused_by_its_fill_ratio(self):
        """Five marks spread over twenty places fill too few of them to be one roll."""
        sparse = marks(1, 0.0, 1.0, 20, 300.0, missing=set(range(20)) - {0, 4, 9, 13, 19})
        self.assertEqual(detect_series(sparse, SETTINGS), [])

    def test_random_defects_raise_no_series(self):
        """No false alarm: thousands of random defects over a coil, none of them periodic."""
        random_defects = clutter(1, 3000, 3000.0, 1500.0, seed=7)
        self.assertEqual(detect_series(random_defects, SETTINGS), [])

    def test_dense_clutter_at_one_width_raises_no_series(self):
        """Defects bunched at one edge (0.3 a metre in a 20 mm band) do not make a series by chance."""
        rng = random.Random(11)
        edge = [PlacedDefect(n, "scratch", rng.uniform(0, 2000.0), rng.uniform(5.0, 25.0)) for n in range(600)]
        self.assertEqual(detect_series(edge, SETTINGS), [])

    def test_a_flood_of_defects_anchors_nothing_and_the_series_beside_it_is_found(self):
        """3,000 scratches within 60 m at one width (a faulty box) raise no series, and a roll mark
        every 1.5 m from 100 m on is still found whole. Without the flood guard the detector tries
        every pair of the flood at every pitch (hours of CPU), so this test also holds the guard."""
        flood = [PlacedDefect(10_000 + n, "scratch", n * 0.02, 300.0) for n in range(3000)]
        series = marks(1, 100.0, 1.5, 12, 300.0)
        found = detect_series(flood + series, PeriodicSettings())
        self.assertEqual([(s.member_ids, round(s.pitch_m, 3)) for s in found],
                         [(tuple(d.defect_id for d in series), 1.5)])

    def test_a_missed_second_mark_does_not_double_the_pitch(self):
        """When the mark one pitch after the first is missing, the series is still at 1.2 m, not 2.4 m."""
        series_marks = marks(1, 50.0, 1.2, 30, 700.0, missing={1, 12, 13})
        found = detect_series(series_marks, SETTINGS)
        self.assertEqual(len(found), 1)
        self.assertLessEqual(abs(found[0].pitch_m - 1.2), 0.01)
        self.assertEqual(len(found[0].member_ids), 27)

    def test_a_long_run_of_misses_does_not_split_the_series(self):
        """Six empty places in a row (more than max_consecutive_misses) still give one series."""
        series_marks = marks(1, 0.0, 3.0, 40, 200.0, missing={15, 16, 17, 18, 19, 20})
        found = detect_series(series_marks, SETTINGS)
        self.assertEqual([len(s.member_ids) for s in found], [34])

    def test_two_series_at_close_pitches_and_widths_are_told_apart(self):
        """Rolls of 1.50 and 1.55 m at 400 and 430 mm, interleaved: two series, each with its own marks."""
        first = marks(1, 10.0, 1.50, 40, 400.0)
        second = marks(1001, 10.7, 1.55, 40, 430.0)
        found = detect_series(first + second, SETTINGS)
        self.assertEqual(sorted((round(s.pitch_m, 2), set(s.member_ids)) for s in found),
                         [(1.5, {d.defect_id for d in first}), (1.55, {d.defect_id for d in second})])

    def test_types_and_surfaces_are_separate_series(self):
        """The same pitch and width on another surface or of another type is another series."""
        top = marks(1, 0.0, 2.0, 8, 300.0)
        bottom = marks(101, 0.5, 2.0, 8, 300.0, surface="bottom")
        dents = marks(201, 1.0, 2.0, 8, 300.0, defect_type="dent")
        found = detect_series(top + bottom + dents, SETTINGS)
        self.assertEqual(sorted((s.surface, s.defect_type, len(s.member_ids)) for s in found),
                         [("bottom", "scratch", 8), ("top", "dent", 8), ("top", "scratch", 8)])

    def test_the_answer_does_not_depend_on_the_order_of_arrival(self):
        """Shuffled input gives the same series."""
        coil = labelled_coil(42)
        shuffled = list(coil.defects)
        random.Random(3).shuffle(shuffled)
        self.assertEqual(detect_series(coil.defects, SETTINGS), detect_series(shuffled, SETTINGS))

    def test_generated_coils_are_found_with_no_false_series(self):
        """On 30 generated coils (noise, misses, close pitches, clutter) every true series of five or
        more marks is found whole (80 % of its marks in one detected series) and every detected
        series is a true one."""
        recipe = CoilRecipe(random_defects_per_100m=20.0, edge_defects_per_100m=15.0)
        for seed in range(30):
            coil = labelled_coil(seed, recipe)
            found = detect_series(coil.defects, SETTINGS)
            for truth in coil.series:
                if len(truth.member_ids) >= 5:
                    self.assertTrue(any(len(truth.member_ids & set(f.member_ids)) >= 0.8 * len(truth.member_ids)
                                        for f in found), f"seed {seed}: series at {truth.pitch_m:.3f} m not found")
            for series in found:
                members = set(series.member_ids)
                self.assertTrue(any(len(members & t.member_ids) >= 0.8 * len(members) for t in coil.series),
                                f"seed {seed}: false series at {series.pitch_m} m")


class RollTests(SynchronousTestCase):
    ROLLS = (Roll("BR-1 bridle", 800.0), Roll("SR-2 steering", 600.0), Roll("CR-3 coater", 350.0))

    def test_a_pitch_names_the_roll_of_that_circumference(self):
        """2.513 m is the circumference of an 800 mm roll; 1.885 m of a 600 mm roll."""
        self.assertEqual(likely_roll(2.513, self.ROLLS, 0.02).name, "BR-1 bridle")
        self.assertEqual(likely_roll(1.88, self.ROLLS, 0.02).name, "SR-2 steering")

    def test_a_pitch_far_from_every_roll_names_none(self):
        """A pitch 10 % off every circumference names no roll."""
        self.assertIsNone(likely_roll(2.0, self.ROLLS, 0.02))
        self.assertIsNone(likely_roll(2.513, (), 0.02))


class WatchTests(SynchronousTestCase):
    def test_a_series_is_confirmed_by_its_fifth_mark_and_extended_after(self):
        """Marks arriving one by one: nothing until the fifth, then 'confirmed', then 'extended'."""
        watch = PeriodicWatch(SETTINGS)
        series_marks = marks(1, 0.0, 2.0, 7, 300.0)
        kinds = [[e.kind for e in watch.add([mark])] for mark in series_marks]
        self.assertEqual(kinds, [[], [], [], [], ["confirmed"], ["extended"], ["extended"]])
        self.assertEqual(len(watch.series[0].member_ids), 7)

    def test_an_unrelated_defect_changes_nothing(self):
        """A defect of another type arriving after a confirmation reports no event."""
        watch = PeriodicWatch(SETTINGS)
        watch.add(marks(1, 0.0, 2.0, 6, 300.0))
        self.assertEqual(watch.add([PlacedDefect(99, "dent", 5.0, 300.0)]), [])

    def test_the_live_answer_is_the_whole_coil_answer(self):
        """Defects arriving in batches of 20 along the coil end in the series detect_series finds."""
        coil = labelled_coil(5, CoilRecipe(series_count=(2, 3)))
        watch = PeriodicWatch(SETTINGS)
        arriving = sorted(coil.defects, key=lambda d: d.position_m)
        events = []
        for start in range(0, len(arriving), 20):
            events.extend(watch.add(arriving[start:start + 20]))
        self.assertEqual(watch.series, detect_series(coil.defects, SETTINGS))
        self.assertEqual(sum(1 for e in events if e.kind == "confirmed"), len(watch.series))


class SettingsTests(SynchronousTestCase):
    def test_inconsistent_settings_are_refused_with_the_reason(self):
        """A pitch range upside down, a tolerance as wide as half a pitch, or min_members 2 is refused."""
        for bad, word in (({"min_pitch_m": 5.0, "max_pitch_m": 1.0}, "min_pitch_m"),
                          ({"pitch_tolerance_m": 0.3}, "pitch_tolerance_m"),
                          ({"min_members": 2}, "min_members"),
                          ({"min_fill_ratio": 0.0}, "min_fill_ratio")):
            with self.assertRaises(ValueError) as caught:
                PeriodicSettings(**bad)
            self.assertIn(word, str(caught.exception))
