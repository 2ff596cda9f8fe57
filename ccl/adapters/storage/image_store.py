"""The image file store: ``original/``, ``labeled/``, ``thumbnails/`` and ``temp/`` under one root.

Every file is written under ``temp/``, fsynced, then hard-linked to its final name and the temp
name removed. ``link`` (unlike ``rename``) refuses to replace an existing file, so two uploads
can never overwrite each other; the directory is fsynced so the new name survives a crash.
A reader therefore sees a whole file or none. Everything here blocks: call it in a thread.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import struct
import tempfile
import threading
import time
import warnings
from pathlib import Path

import attrs
from PIL import Image, ImageFile
from twisted.internet.threads import deferToThread
from zope.interface import implementer

from ccl.adapters.storage.image_check import Incomplete, check_complete
from ccl.domain.ingest.images import FORMATS, KINDS, image_filename, next_stamp_ms, thumbnail_filename
from ccl.domain.ingest.times import file_stamp
from ccl.ports import IImageFiles, IImageFolder, ImageRefused, StorageUnavailable



# We enforce our own pixel budget before decoding; Pillow's global one would only warn or
# refuse at a different size.
Image.MAX_IMAGE_PIXELS = None
ImageFile.LOAD_TRUNCATED_IMAGES = False
warnings.simplefilter("ignore", Image.DecompressionBombWarning)

#: errno values that mean "the store cannot take files now" (503), not "your file is bad".
STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOENT,
                  errno.ENOTDIR, errno.EIO}


@attrs.define
class TempFile:
    """A file being received under temp/: its digest and size are computed while writing."""

    path: Path
    handle: object
    size: int = 0
    digest: object = attrs.field(factory=hashlib.sha256)

    def write(self, chunk: bytes) -> None:
        self.handle.write(chunk)
        self.digest.update(chunk)
        self.size += len(chunk)

    def close(self) -> None:
        """Flush to the disk: what we acknowledge later must survive a power cut."""
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()

    @property
    def sha256(self) -> str:
        return self.digest.hexdigest()


@attrs.frozen
class Inspected:
    format: str
    ext: str
    width: int
    height: int


@attrs.frozen
class Stored:
    kind: str
    filename: str
    path: Path


@implementer(IImageFolder)
class ImageStore:
    def __init__(self, root: Path, *, max_pixels: int, thumbnail_size: int = 320):
        self.root = Path(root)
        self.temp = self.root / "temp"
        self.max_pixels = max_pixels
        self.thumbnail_size = thumbnail_size
        self._lock = threading.Lock()
        self._last_ms: dict[str, int] = {}

    def folder(self, kind: str) -> Path:
        return self.root / kind

    def thumbnail_folder(self, kind: str) -> Path:
        return self.root / "thumbnails" / kind

    def prepare(self) -> int:
        """Create the folders and remove leftovers of uploads cut short (a crash). Returns files removed."""
        for folder in [self.temp, *(self.folder(k) for k in KINDS), *(self.thumbnail_folder(k) for k in KINDS)]:
            folder.mkdir(parents=True, exist_ok=True)
        removed = 0
        for leftover in self.temp.iterdir():
            if leftover.is_file():
                leftover.unlink(missing_ok=True)
                removed += 1
        return removed

    # Receiving -----------------------------------------------------------------------------

    def new_temp(self) -> TempFile:
        try:
            fd, name = tempfile.mkstemp(dir=self.temp, prefix="up-", suffix=".part")
        except OSError as error:
            raise StorageUnavailable(f"cannot create a file under {self.temp}: {error.strerror}") from error
        # A small buffer: the multipart reader hands over pieces of up to 256 KB, which a
        # buffer smaller than them passes straight to the kernel instead of copying first.
        return TempFile(Path(name), os.fdopen(fd, "wb", buffering=64 * 1024))

    def inspect(self, path: Path) -> Inspected:
        """Decide the type by decoding the header, check the pixel budget, and check that the
        file is complete (image_check). Every pixel is decoded later, for the thumbnail, off
        the request path: a full decode of both images would cost more than all the rest."""
        try:
            with Image.open(path) as image:
                if image.format not in FORMATS:
                    raise ImageRefused(415, f"{image.format} images are not accepted; send JPEG, PNG or BMP")
                width, height = image.size
                if width * height > self.max_pixels:
                    raise ImageRefused(413, f"{width}x{height} pixels is over the budget of {self.max_pixels} pixels")
                image_format, tile = image.format, list(image.tile)
            check_complete(path, image_format, tile)
        except ImageRefused:
            raise
        except Image.UnidentifiedImageError:
            raise ImageRefused(415, "not a JPEG, PNG or BMP image (decided by decoding the content)") from None
        except Incomplete as error:
            raise ImageRefused(422, f"the image data is truncated or corrupt: {error}") from None
        except Image.DecompressionBombError as error:
            raise ImageRefused(413, str(error)) from None
        except (OSError, SyntaxError, ValueError, EOFError, struct.error) as error:
            if isinstance(error, OSError) and error.errno in STORAGE_ERRNOS:
                raise StorageUnavailable(str(error)) from error
            raise ImageRefused(422, f"the image data is truncated or corrupt ({error})") from None
        return Inspected(image_format, FORMATS[image_format], width, height)

    def thumbnail_path(self, kind: str, filename: str) -> Path:
        return self.thumbnail_folder(kind) / thumbnail_filename(filename)

    def make_thumbnail(self, kind: str, filename: str) -> Path | None:
        """Decode a stored image (at reduced scale for JPEG) and place its thumbnail; None when the
        image is gone (purged). A corrupt image raises (the caller logs it)."""
        source = self.folder(kind) / filename
        final = self.thumbnail_path(kind, filename)
        if final.exists():
            return final
        try:
            with Image.open(source) as image:
                if image.format == "JPEG":
                    image.draft("RGB", (self.thumbnail_size // 2, self.thumbnail_size // 2))
                image.load()
                thumb = image.convert("RGB") if image.mode not in ("RGB", "L") else image
                thumb.thumbnail((self.thumbnail_size, self.thumbnail_size), Image.Resampling.BILINEAR)
                temp = self.new_temp()
                try:
                    thumb.save(temp.handle, "JPEG", quality=80)
                    # No fsync: a thumbnail can be made again, and four fsyncs per pair more
                    # would halve the upload rate. A killed process still never shows half a
                    # file (the page cache has it whole); only a power cut could.
                    temp.handle.close()
                    os.link(temp.path, final)
                except FileExistsError:
                    pass
                finally:
                    self.discard([temp.path])
        except FileNotFoundError:
            return None
        except OSError as error:
            if error.errno in STORAGE_ERRNOS:
                raise StorageUnavailable(str(error)) from error
            raise
        return final

    # Committing ----------------------------------------------------------------------------

    def commit(self, coil_number: str, received_at_ms: int, files: dict[str, tuple[Path, str, Path]]) -> list[Stored]:
        """Give the temp files of one upload their final names, with one stamp for all.

        ``files``: kind -> (temp path, extension). On any failure every
        name made so far is removed again, and StorageUnavailable is raised.
        """
        for _attempt in range(1000):
            stamp_ms = self._allocate(coil_number, received_at_ms)
            made: list[Path] = []
            try:
                stored = []
                for kind, (temp, ext) in files.items():
                    name = image_filename(coil_number, file_stamp(_from_ms(stamp_ms)), kind, ext)
                    final = self.folder(kind) / name
                    os.link(temp, final)
                    made.append(final)
                    stored.append(Stored(kind, name, final))
                for folder in {p.parent for p in made}:
                    _fsync_dir(folder)
            except FileExistsError:
                # A file of a previous run has this stamp: take the next millisecond.
                self.remove(made)
                received_at_ms = stamp_ms + 1
                continue
            except OSError as error:
                self.remove(made)
                raise StorageUnavailable(f"cannot store the image files: {error.strerror or error}") from error
            self.discard([temp for temp, _ext in files.values()])
            return stored
        raise StorageUnavailable("no free file name found")

    def _allocate(self, coil_number: str, now_ms: int) -> int:
        with self._lock:
            stamp = next_stamp_ms(now_ms, self._last_ms.get(coil_number))
            self._last_ms[coil_number] = stamp
            if len(self._last_ms) > 10_000:  # forget coils not seen for a while
                horizon = now_ms - 60_000
                self._last_ms = {c: ms for c, ms in self._last_ms.items() if ms > horizon}
            return stamp

    def remove(self, paths) -> None:
        for path in paths:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            except OSError:
                pass
        for folder in {Path(p).parent for p in paths}:
            try:
                _fsync_dir(folder)
            except OSError:
                pass

    def discard(self, paths) -> None:
        for path in paths:
            try:
                os.unlink(path)
            except OSError:
                pass

    # Reading -------------------------------------------------------------------------------

    def path_of(self, kind: str, filename: str) -> Path:
        return self.folder(kind) / filename

    def disk_usage(self):
        return shutil.disk_usage(self.root)

    def file_time(self) -> float:
        """The present by the file system's clock: the modification time of a new file under
        temp/. File times compare with this, not with the process's clock, which may differ
        (a network file system, a clock stepped since, a test run under a faked clock)."""
        temp = self.new_temp()
        try:
            temp.handle.close()
            return temp.path.stat().st_mtime
        except OSError as error:
            raise StorageUnavailable(str(error)) from error
        finally:
            self.discard([temp.path])

    def probe(self) -> None:
        """Raise StorageUnavailable unless a file can be created, written and removed under temp/."""
        temp = self.new_temp()
        try:
            temp.write(b"probe")
            temp.close()
        except OSError as error:
            raise StorageUnavailable(str(error)) from error
        finally:
            self.discard([temp.path])


def _from_ms(ms: int):
    from datetime import datetime, timezone

    # Integer arithmetic: a float division could map two milliseconds to the same stamp.
    return datetime.fromtimestamp(ms // 1000, tz=timezone.utc).replace(microsecond=(ms % 1000) * 1000)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@implementer(IImageFiles)
class ThreadedImageFiles:
    """The store's blocking calls, each in a reactor thread (Pillow releases the GIL)."""

    def __init__(self, store: ImageStore):
        self.store = store

    def inspect(self, paths):
        # All files of a request in one thread hop: hops cost more than the checks.
        return deferToThread(lambda: [self.store.inspect(path) for path in paths])

    def commit(self, coil_number, received_at_ms, files):
        return deferToThread(self.store.commit, coil_number, received_at_ms, files)

    def remove(self, paths):
        return deferToThread(self.store.remove, list(paths))
