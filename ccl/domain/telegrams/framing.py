"""Cutting a TCP byte stream into telegrams, re-synchronising after bad headers.

The framer is pure and incremental: every decision it makes depends only on bytes it
already holds and never on how they were split into feed() calls, so any segmentation of
the same stream yields the same Frames and Garbage, in stream order.

Memory is bounded: a header is judged on its first ``probe_length`` bytes (20 by
default) before any wait for a body, a valid header waits for at most its TC's layout
length, and a run of garbage is handed out in pieces of ``max_garbage`` bytes as soon as
a piece is known to hold no header. So ``buffered`` never exceeds
max(max_garbage + probe_length, the longest layout) between calls.
"""

from __future__ import annotations

import re

import attrs

from ccl.domain.telegrams.header import BAD_LENGTH, HeaderVerdict, judge_header, quick_layout
from ccl.domain.telegrams.layout import Layouts


@attrs.frozen
class Frame:
    """Exactly one layout length of bytes behind a valid header (decode may still refuse)."""

    raw: bytes


@attrs.frozen
class Garbage:
    """Bytes dropped while re-synchronising, with the verdict on the bad header at their
    start. ``continued`` marks the later pieces of a run longer than max_garbage: they
    carry the run's code but no TC/sequence, so nothing is NAKed twice."""

    raw: bytes
    code: str
    reason: str
    tc_code: str | None
    sequence_no: int | None
    continued: bool = False


class TelegramFramer:
    def __init__(self, layouts: Layouts, max_garbage: int = 64 * 1024) -> None:
        if max_garbage < 1:
            raise ValueError("max_garbage must be at least 1")
        self._layouts = layouts
        self._max_garbage = max_garbage
        self._probe = layouts.probe_length
        self._prefixes = _header_prefixes(layouts)
        self._header_pattern, self._pattern_start = _header_pattern(self._prefixes)
        self._buf = bytearray()
        self._pos = 0  # start of unconsumed bytes; compacted once per call
        self._run: HeaderVerdict | None = None  # bad header that opened the garbage run
        self._run_continued = False
        self._scan = 0  # run offset (from _pos) of the first spot not yet ruled out

    @property
    def buffered(self) -> int:
        return len(self._buf) - self._pos

    def feed(self, data: bytes) -> list[Frame | Garbage]:
        self._buf += data
        out: list[Frame | Garbage] = []
        while self._step(out):
            pass
        self._compact()
        return out

    def flush(self, *, final: bool = False) -> list[Garbage]:
        """Give up on what cannot become a telegram.

        final=False (peer idle): garbage is emitted, but a tail that is a plausible start
        of a telegram stays buffered. final=True (connection closed): everything left is
        emitted as Garbage and the framer is empty and reset.
        """
        out: list[Garbage] = []
        if self._run is not None:
            end = self.buffered if final else self._first_plausible(self._scan)
            if end:
                out.append(self._garbage(end, self._run, self._run_continued))
            self._run = None
        if self.buffered and (final or not self._plausible(self._pos)):
            verdict = judge_header(self._view(self._pos, self._probe), self._layouts)
            if verdict.code is None:
                # A valid header whose body never came: the length field is wrong for
                # the bytes actually sent.
                verdict = attrs.evolve(
                    verdict, code=BAD_LENGTH, reason=f"truncated telegram: only "
                    f"{self.buffered} of {verdict.layout.length} bytes came")
            end = self.buffered if final else self._first_plausible(1)
            out.append(self._garbage(end, verdict, False))
        self._scan = 0
        self._compact()
        return out

    def _step(self, out: list) -> bool:
        """Make one decision if the buffered bytes allow it; False when more are needed."""
        if self._run is None:
            if self.buffered < self._probe:
                return False
            head = self._view(self._pos, self._probe)
            layout = quick_layout(head, self._layouts)
            verdict = None
            if layout is None:
                verdict = judge_header(head, self._layouts)
                layout = verdict.layout if verdict.code is None else None
            if layout is not None:
                length = layout.length
                if self.buffered < length:
                    return False
                out.append(Frame(bytes(self._buf[self._pos:self._pos + length])))
                self._pos += length
                return True
            self._run, self._run_continued, self._scan = verdict, False, 1
        found = self._find_header()
        if found is not None and found < self._max_garbage:
            if found:
                out.append(self._garbage(found, self._run, self._run_continued))
            self._run = None
            return True
        if self._scan >= self._max_garbage:
            # No header can start in the first max_garbage bytes: hand them out now so a
            # stream of junk never piles up.
            out.append(self._garbage(self._max_garbage, self._run, self._run_continued))
            self._run_continued = True
            return True
        return False

    def _find_header(self) -> int | None:
        """Run offset of the first valid header at or after _scan, if decidable yet.

        Only offsets below max_garbage matter: past them the piece is handed out anyway.
        """
        limit = min(self.buffered - self._probe, self._max_garbage - 1)
        start = self._pos + self._pattern_start
        while self._scan <= limit:
            match = self._header_pattern.search(self._buf, start + self._scan,
                                                start + limit + self._probe)
            if match is None or match.start() - start > limit:
                break
            offset = match.start() - start
            # The regex is only a fast filter; the verdict is judge_header's, the same
            # one the head of the buffer gets.
            if judge_header(self._view(self._pos + offset, self._probe),
                            self._layouts).code is None:
                self._scan = offset
                return offset
            self._scan = offset + 1
        self._scan = max(self._scan, limit + 1)
        return None

    def _garbage(self, size: int, run: HeaderVerdict, continued: bool) -> Garbage:
        raw = bytes(self._buf[self._pos:self._pos + size])
        self._pos += size
        self._scan = max(0, self._scan - size)
        if continued:
            return Garbage(raw, run.code, f"{run.reason} (continued: still no valid "
                           f"header)", None, None, continued=True)
        return Garbage(raw, run.code, run.reason, run.tc_code, run.sequence_no)

    def _first_plausible(self, start: int) -> int:
        for offset in range(start, self.buffered):
            if self._plausible(self._pos + offset):
                return offset
        return self.buffered

    def _plausible(self, at: int) -> bool:
        """Could the (short) bytes at ``at`` still grow into a valid header?"""
        chunk = bytes(self._buf[at:at + self._probe])
        if len(chunk) >= self._probe:
            return judge_header(chunk, self._layouts).code is None
        return any(all(any(value.startswith(chunk[s:e]) for value in values)
                       for (s, e), values in spans)
                   for spans in self._prefixes)

    def _view(self, at: int, size: int) -> bytes:
        return bytes(self._buf[at:at + size])

    def _compact(self) -> None:
        if self._pos:
            del self._buf[:self._pos]
            self._pos = 0


def _header_prefixes(layouts: Layouts) -> list:
    """Per TC: the header spans with every byte string valid there (tc code, length).

    A length field is valid when it reads as the layout length: zero-padded, with any of
    the leading zeros replaced by spaces.
    """
    tc_span = layouts.header_spans["tc_code"]
    length_span = layouts.header_spans["length"]
    width = length_span[1] - length_span[0]
    result = []
    for tc_code, layout in layouts.by_tc.items():
        padded = str(layout.length).zfill(width)
        zeros = len(padded) - len(padded.lstrip("0"))
        lengths = {(" " * k + padded[k:]).encode("ascii") for k in range(zeros + 1)}
        result.append([(tc_span, {tc_code.encode("ascii")}), (length_span, lengths)])
    return result


def _header_pattern(prefixes: list) -> tuple[re.Pattern, int]:
    """A regex matching exactly the valid headers, and the header offset it starts at.

    Scanning junk for the next header is the framer's hot loop; one regex search in C
    replaces a Python check at every offset.
    """
    alternatives, first = [], min(span[0] for spans in prefixes for span, _ in spans)
    for spans in prefixes:
        parts, at = [], first
        for (begin, end), values in sorted(spans, key=lambda item: item[0]):
            if begin > at:
                parts.append(b".{%d}" % (begin - at))
            parts.append(b"(?:" + b"|".join(re.escape(v) for v in sorted(values)) + b")")
            at = end
        alternatives.append(b"".join(parts))
    return re.compile(b"|".join(b"(?:%s)" % alt for alt in alternatives), re.DOTALL), first
