"""Accuracy of the AI models from the operators' reviews, and the training export's manifest.

A reviewed defect tells what became of the label the model gave (the type it said:
``original_defect_type`` when reclassified, else ``defect_type``): confirmed (the final type is
the model's), a false positive, or reclassified away (the final type differs). Per model and
type the model said::

    precision = confirmed / (confirmed + false positives + reclassified away)

Recall is not here: a defect the model missed is never reviewed. Below ``min_reviews`` reviews
the figure is withheld ("too few reviews"), the counts still shown.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import attrs


@attrs.frozen
class Precision:
    model_id: int | None
    model: str | None  # name and version; None: the defects named no registered model
    defect_type: str
    confirmed: int
    false_positive: int
    reclassified: int
    precision: float | None  # None: too few reviews

    @property
    def reviews(self) -> int:
        return self.confirmed + self.false_positive + self.reclassified

    @property
    def too_few(self) -> bool:
        return self.precision is None


def precision_of(confirmed: int, false_positive: int, reclassified: int, min_reviews: int) -> float | None:
    reviews = confirmed + false_positive + reclassified
    if reviews == 0 or reviews < min_reviews:
        return None
    return confirmed / reviews


def precision_table(rows: Iterable[Mapping[str, Any]], min_reviews: int) -> list[Precision]:
    """One Precision per (model, type) row of counts, with an "all types" row per model first."""
    by_model: dict[Any, list[Precision]] = {}
    for r in rows:
        counts = int(r["confirmed"]), int(r["false_positive"]), int(r["reclassified"])
        by_model.setdefault((r["model_id"], r["model"]), []).append(
            Precision(r["model_id"], r["model"], r["defect_type"], *counts, precision_of(*counts, min_reviews)))
    table = []
    for (model_id, model), items in by_model.items():
        totals = (sum(p.confirmed for p in items), sum(p.false_positive for p in items),
                  sum(p.reclassified for p in items))
        table.append(Precision(model_id, model, ALL_TYPES, *totals, precision_of(*totals, min_reviews)))
        table.extend(sorted(items, key=lambda p: (-p.reviews, p.defect_type)))
    return table


ALL_TYPES = "*"

#: The manifest's columns (CSV header and JSON keys), in order.
MANIFEST_COLUMNS = ("defect_id", "image_file", "labeled_file", "final_label", "original_label", "outcome",
                    "model_id", "model", "model_version", "coil", "tracked_coil", "metre", "reviewer",
                    "reviewed_at", "box_x", "box_y", "box_w", "box_h", "severity", "confidence")

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_EXTENSIONS = {"jpeg": "jpg", "jpg": "jpg", "png": "png", "bmp": "bmp"}


@attrs.frozen
class ExportItem:
    """One reviewed defect: its manifest row and the files to pack, ``(stored path, name in the
    zip, manifest column that names it)``. Names are ours (folder, defect id, final label):
    never a client's file name."""

    manifest: dict[str, Any]
    files: tuple[tuple[str, str, str], ...]


def _name(folder: str, defect_id: int, label: str, image_format: str | None) -> str:
    extension = _EXTENSIONS.get((image_format or "").lower(), "img")
    return f"{folder}/{defect_id:010d}_{_UNSAFE.sub('_', label)[:40] or 'label'}.{extension}"


def export_items(rows: Iterable[Mapping[str, Any]]) -> list[ExportItem]:
    items = []
    for r in rows:
        files = []
        if r.get("original_path"):
            files.append((r["original_path"], _name("images", r["id"], r["final_label"], r.get("original_format")),
                          "image_file"))
        if r.get("labeled_path"):
            files.append((r["labeled_path"], _name("labeled", r["id"], r["final_label"], r.get("labeled_format")),
                          "labeled_file"))
        manifest = {
            "defect_id": r["id"], "image_file": "", "labeled_file": "",
            "final_label": "" if r["outcome"] == "false_positive" else r["final_label"],
            "original_label": r["original_label"], "outcome": r["outcome"], "model_id": r.get("model_id"),
            "model": r.get("model_name"), "model_version": r.get("model_version"), "coil": r["coil_number"],
            "tracked_coil": r.get("tracked_coil"), "metre": r.get("metre"), "reviewer": r.get("reviewed_by"),
            "reviewed_at": r.get("reviewed_at"), "box_x": r.get("defect_position_x"),
            "box_y": r.get("defect_position_y"), "box_w": r.get("defect_size_width"),
            "box_h": r.get("defect_size_height"), "severity": r.get("severity"),
            "confidence": r.get("confidence_score")}
        items.append(ExportItem(manifest, tuple(files)))
    return items
