"""The training export: reviewed images with their final labels, packed into a zip file on disk
(a temporary file, built in a thread: a big export never sits in memory or on the reactor).

Inside: ``images/<defect id>_<final label>.<ext>`` (the original image), ``labeled/...`` (the
box's labeled image), ``manifest.csv`` (UTF-8 with BOM) and ``manifest.json`` with one row per
reviewed defect (ccl.domain.review_accuracy.MANIFEST_COLUMNS). Images are stored as they are
(JPEG does not shrink); an image file that is gone leaves its manifest cell empty.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
import zipfile
from pathlib import Path

from twisted.internet import threads
from zope.interface import implementer

from ccl.adapters.image_files import inside
from ccl.domain.coil_report import spreadsheet_safe
from ccl.domain.review_accuracy import MANIFEST_COLUMNS, ExportItem
from ccl.ports.reports import ITrainingArchive


def build_zip(items: list[ExportItem], image_root: Path, folder: str | None = None) -> str:
    """The path of a new zip file holding ``items`` (blocking: call it in a thread). On any
    failure the half-written file is removed and the error raised."""
    handle, path = tempfile.mkstemp(prefix="ccl-training-", suffix=".zip", dir=folder)
    os.close(handle)
    try:
        rows = []
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
            for item in items:
                row = dict(item.manifest)
                for stored, name, column in item.files:
                    source = inside(image_root, stored)
                    if source is not None:
                        archive.write(source, name)
                        row[column] = name
                rows.append(row)
            text = io.StringIO()
            writer = csv.writer(text, lineterminator="\r\n")
            writer.writerow(MANIFEST_COLUMNS)
            writer.writerows([spreadsheet_safe("" if row[c] is None else row[c]) for c in MANIFEST_COLUMNS]
                             for row in rows)
            archive.writestr("manifest.csv", b"\xef\xbb\xbf" + text.getvalue().encode("utf-8"),
                             compress_type=zipfile.ZIP_DEFLATED)
            archive.writestr("manifest.json", json.dumps({"columns": list(MANIFEST_COLUMNS), "rows": rows},
                                                         ensure_ascii=False, default=str, indent=1).encode("utf-8"),
                             compress_type=zipfile.ZIP_DEFLATED)
    except BaseException:
        os.unlink(path)
        raise
    return path


@implementer(ITrainingArchive)
class TrainingArchive:
    def __init__(self, image_root: Path, folder: str | None = None):
        self._image_root = image_root
        self._folder = folder

    def build(self, items: list):
        return threads.deferToThread(build_zip, items, self._image_root, self._folder)
