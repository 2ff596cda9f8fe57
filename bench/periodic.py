"""Roll-mark detection on labelled synthetic coils: precision and recall.

Usage: python bench/periodic.py [--coils 300] [--seed 1]

Each coil hides 0-3 periodic series (noise in position and width, 20 % of the marks missing,
some series at pitches within 3 % of each other, on either surface) among random defects of the
same types. Prints, over all coils:
- per defect: precision and recall of "this defect belongs to a periodic series";
- per series: a true series is found when one detected series holds >= 80 % of its members;
  a detected series is right when >= 80 % of its members come from one true series;
- the live watch (defects arriving in lengthwise order, --batch at a time, as the boxes post them);
- CPU time per defect of both.
Targets: precision and recall >= 0.95 (docs/performance.md).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ccl.domain.quality.periodic import PeriodicSettings, PeriodicWatch, detect_series  # noqa: E402
from ccl.domain.quality.synthetic import CoilRecipe, labelled_coil  # noqa: E402


def score(coils, found_per_coil):
    tp = fp = fn = 0
    true_series = found_true = detected = right = 0
    for coil, found in zip(coils, found_per_coil):
        truth = coil.periodic_ids
        predicted = {i for series in found for i in series.member_ids}
        tp += len(truth & predicted)
        fp += len(predicted - truth)
        fn += len(truth - predicted)
        for series in coil.series:
            if len(series.member_ids) < 5:
                continue  # too short to be a series by any definition the settings allow
            true_series += 1
            if any(len(series.member_ids & set(f.member_ids)) >= 0.8 * len(series.member_ids) for f in found):
                found_true += 1
        for f in found:
            detected += 1
            members = set(f.member_ids)
            if any(len(members & s.member_ids) >= 0.8 * len(members) for s in coil.series):
                right += 1
    return {
        "defect precision": tp / (tp + fp) if tp + fp else 1.0,
        "defect recall": tp / (tp + fn) if tp + fn else 1.0,
        "series precision": right / detected if detected else 1.0,
        "series recall": found_true / true_series if true_series else 1.0,
        "true series": true_series,
        "detected series": detected,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coils", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch", type=int, default=20, help="defects a live batch brings (a box's post)")
    args = parser.parse_args()
    settings = PeriodicSettings()
    print(f"settings: {settings}")
    for name, recipe in RECIPES.items():
        run(name, recipe, args, settings)
    return 0


RECIPES = {
    "plain (8 random defects per 100 m)": CoilRecipe(),
    "cluttered (40 random + 30 at one edge per 100 m, 30 % missing, noisier)": CoilRecipe(
        random_defects_per_100m=40.0, edge_defects_per_100m=30.0, miss_probability=0.3,
        position_noise_m=0.02, cross_noise_mm=6.0),
}


def run(name, recipe, args, settings) -> None:
    coils = [labelled_coil(args.seed * 100_000 + n, recipe) for n in range(args.coils)]
    defects = sum(len(c.defects) for c in coils)

    started = time.process_time()
    whole = [detect_series(c.defects, settings) for c in coils]
    whole_cpu = time.process_time() - started

    started = time.process_time()
    live = []
    for coil in coils:
        watch = PeriodicWatch(settings)
        arriving = sorted(coil.defects, key=lambda d: d.position_m)
        for start in range(0, len(arriving), args.batch):
            watch.add(arriving[start:start + args.batch])
        live.append(watch.series)
    live_cpu = time.process_time() - started

    print(f"{name}: {args.coils} coils, {defects} defects, {sum(len(c.series) for c in coils)} series")
    for label, found, cpu in (("whole coil", whole, whole_cpu), ("live", live, live_cpu)):
        figures = score(coils, found)
        print(f"  {label}: " + ", ".join(
            f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in figures.items())
            + f", CPU {cpu / defects * 1e6:.0f} us/defect")


if __name__ == "__main__":
    sys.exit(main())
