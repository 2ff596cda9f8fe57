"""An incremental copy of the image store (original/ and labeled/) to the backup path.

Only files not copied before are copied; each is hashed while it is copied and must match the
sha256 the database holds for it, else it is reported and not kept. A file is written under a
temporary name, flushed, then renamed, and only then recorded in ``manifest.jsonl``: a run that
is interrupted leaves at most one ``.partial`` file, which the next run overwrites, and the next
run continues with what is not in the manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import attrs

KINDS = ("original", "labeled")
_CHUNK = 1 << 20


@attrs.frozen
class CatalogedImage:
    """A row of ``images``: where the file is and what its bytes must hash to."""

    kind: str
    filename: str
    sha256: str


@attrs.frozen
class Mismatch:
    path: Path
    expected: str
    actual: str


@attrs.define
class CopyReport:
    copied: int = 0
    copied_bytes: int = 0
    already: int = 0
    missing: list[Path] = attrs.field(factory=list)
    mismatched: list[Mismatch] = attrs.field(factory=list)
    stopped_early: bool = False

    @property
    def ok(self) -> bool:
        return not self.missing and not self.mismatched


class ImageCopy:
    def __init__(self, source_root: Path, target_root: Path):
        self.source_root = source_root
        self.target_root = target_root
        self.manifest_path = target_root / "manifest.jsonl"

    def copied(self) -> set[tuple[str, str, str]]:
        """(kind, filename, sha256) of every file the manifest records as copied and verified."""
        found = set()
        try:
            with open(self.manifest_path, encoding="utf-8") as manifest:
                for line in manifest:
                    try:
                        entry = json.loads(line)
                        found.add((entry["kind"], entry["filename"], entry["sha256"]))
                    except (ValueError, KeyError):
                        continue  # a line cut short by an interruption: that file is copied again
        except FileNotFoundError:
            pass
        return found

    def run(self, images: Iterable[CatalogedImage], max_files: int | None = None,
            progress: Callable[[CopyReport], None] | None = None) -> CopyReport:
        """Copy what is missing; ``max_files`` bounds one run (the rest waits for the next)."""
        report = CopyReport()
        done = self.copied()
        for kind in KINDS:
            (self.target_root / kind).mkdir(parents=True, exist_ok=True)
        with open(self.manifest_path, "a", encoding="utf-8") as manifest:
            if manifest.tell() and not self.manifest_path.read_bytes().endswith(b"\n"):
                manifest.write("\n")  # end the line an interrupted run cut short
            for image in images:
                if image.kind not in KINDS or Path(image.filename).name != image.filename:
                    continue  # never a path out of the store
                target = self.target_root / image.kind / image.filename
                if (image.kind, image.filename, image.sha256.strip()) in done and target.exists():
                    report.already += 1
                    continue
                if max_files is not None and report.copied >= max_files:
                    report.stopped_early = True
                    break
                self._copy_one(image, target, manifest, report)
                if progress is not None and report.copied and report.copied % 1000 == 0:
                    progress(report)
            manifest.flush()
            os.fsync(manifest.fileno())
        return report

    def _copy_one(self, image: CatalogedImage, target: Path, manifest, report: CopyReport) -> None:
        source = self.source_root / image.kind / image.filename
        partial = target.with_name(f".{target.name}.partial")
        digest = hashlib.sha256()
        size = 0
        try:
            with open(source, "rb") as reader, open(partial, "wb") as writer:
                while chunk := reader.read(_CHUNK):
                    digest.update(chunk)
                    writer.write(chunk)
                    size += len(chunk)
                writer.flush()
                os.fsync(writer.fileno())
        except FileNotFoundError:
            partial.unlink(missing_ok=True)
            report.missing.append(source)
            return
        expected = image.sha256.strip()
        if digest.hexdigest() != expected:
            partial.unlink(missing_ok=True)
            report.mismatched.append(Mismatch(source, expected, digest.hexdigest()))
            return
        os.replace(partial, target)
        manifest.write(json.dumps({"kind": image.kind, "filename": image.filename, "sha256": expected}) + "\n")
        report.copied += 1
        report.copied_bytes += size
        if report.copied % 100 == 0:
            manifest.flush()
            os.fsync(manifest.fileno())
