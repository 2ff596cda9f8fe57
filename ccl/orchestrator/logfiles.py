"""Log files rotated by size, written in whole lines, and tails that cross the rotation.

``<name>.log`` is the live file, ``<name>.log.1`` the newest rotated one, up to
``<name>.log.<keep>``. A write is always whole lines (children's output is split into
lines first), and rotation happens only between writes, so no line is ever cut in two
files. Writes, rotation and tails all run on the reactor thread, so a tail never sees a
rotation half done; each is a few small system calls.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

_BLOCK = 65536


class RotatingLog:
    def __init__(self, path: Path, max_bytes: int, keep: int):
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.keep = keep
        self._observers: list[Callable[[list[str]], None]] = []
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = self._open()

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)

    def rotated(self, index: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{index}")

    def write_lines(self, lines: list[bytes]) -> None:
        """Append whole lines (without their newline) in one write."""
        if not lines:
            return
        data = b"".join(line + b"\n" for line in lines)
        size = os.fstat(self._fd).st_size
        if size and size + len(data) > self.max_bytes:
            self.rotate()
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        if self._observers:
            text = [line.decode("utf-8", "replace") for line in lines]
            for observer in list(self._observers):
                observer(text)

    def rotate(self) -> None:
        os.close(self._fd)
        self.rotated(self.keep).unlink(missing_ok=True)
        for index in range(self.keep - 1, 0, -1):
            if self.rotated(index).exists():
                os.replace(self.rotated(index), self.rotated(index + 1))
        if self.path.exists():
            os.replace(self.path, self.rotated(1))
        self._fd = self._open()

    def follow(self, observer: Callable[[list[str]], None]) -> Callable[[], None]:
        """Call ``observer`` with every batch of lines written from now on; returns the unsubscribe."""
        self._observers.append(observer)
        return lambda: self._observers.remove(observer) if observer in self._observers else None

    def tail(self, count: int) -> list[str]:
        return tail_lines(self.path, count, self.keep)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _last_lines(path: Path, count: int) -> list[bytes]:
    """The last ``count`` complete lines of one file, reading backwards in blocks."""
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return []
    with handle:
        end = handle.seek(0, os.SEEK_END)
        data = b""
        position = end
        while position > 0 and data.count(b"\n") <= count:
            step = min(_BLOCK, position)
            position -= step
            handle.seek(position)
            data = handle.read(step) + data
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if position > 0:
        lines = lines[1:]  # the first piece may be the end of an earlier line
    return lines[-count:] if count else []


def tail_lines(path: Path, count: int, keep: int) -> list[str]:
    """The last ``count`` lines of ``path`` and, when it has fewer, of its rotated files."""
    path = Path(path)
    collected: list[bytes] = []
    files = [path] + [path.with_name(f"{path.name}.{index}") for index in range(1, keep + 1)]
    for file in files:
        if len(collected) >= count:
            break
        collected = _last_lines(file, count - len(collected)) + collected
    return [line.decode("utf-8", "replace") for line in collected]


class LineSplitter:
    """Bytes in, whole lines out; an over-long line is cut at ``max_line`` bytes."""

    def __init__(self, max_line: int = 65536):
        self._buffer = b""
        self._max = max_line

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        while len(self._buffer) > self._max:
            lines.append(self._buffer[: self._max])
            self._buffer = self._buffer[self._max:]
        return [line.rstrip(b"\r") for line in lines]

    def flush(self) -> list[bytes]:
        rest, self._buffer = self._buffer, b""
        return [rest] if rest else []
