"""Telegram layouts: loaded from the TOML layout file a plant engineer edits.

The file is the only place widths, field order, types and TC codes live, so that following
the real interface sheet is an edit and a restart. Because the file is edited by hand, the
loader checks it hard and says exactly what is wrong (LayoutError) rather than letting a
typo turn into NAKs at run time.
"""

from __future__ import annotations

import importlib.resources
import os
import re
import tomllib
import types
from collections.abc import Mapping

import attrs

from ccl.domain.telegrams.fields import (
    DATE, DECIMAL, DIGITS, FIELD_TYPES, INT, SPARE, TEXT, TIME, FieldSpec,
)

PROCESS = "process"
REPLY = "reply"
ALIVE = "alive"
KINDS = (PROCESS, REPLY, ALIVE)

DEFAULT_LAYOUT_RESOURCE = "telegram-layout.toml"

# The header fields the codec and framer rely on, with the type each must have. Other
# header bytes may only be named 'spare': the header of every stored table is fixed.
REQUIRED_HEADER = {
    "tc_code": DIGITS, "line_code": TEXT, "sequence_no": INT,
    "length": INT, "date": DATE, "time": TIME,
}
# Fields the reply/alive builders fill in, per telegram name.
REQUIRED_BODY = {
    "ack": {"acked_tc_code": DIGITS, "acked_sequence_no": INT, "result_code": DIGITS},
    "nak": {"acked_tc_code": DIGITS, "acked_sequence_no": INT, "result_code": DIGITS},
    "alive": {"alive_count": INT, "state": DIGITS},
}
REQUIRED_KIND = {"ack": REPLY, "nak": REPLY, "alive": ALIVE}

_FIXED_WIDTH = {DATE: 8, TIME: 6}
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")
_FIELD_KEYS = frozenset({"name", "width", "type", "scale"})
_TELEGRAM_KEYS = frozenset({"tc_code", "name", "kind", "table", "forward", "length", "fields"})
_TOP_KEYS = frozenset({"header", "telegram"})


class LayoutError(ValueError):
    """The layout file is unusable; the message names the TC or field and the problem."""


@attrs.frozen
class TelegramLayout:
    tc_code: str
    name: str
    kind: str
    length: int  # whole telegram, header included
    fields: tuple[FieldSpec, ...]  # body only, in wire order
    table: str | None = None
    forward: str | None = None
    #: The body fields that are stored (all but spares), in wire order; computed once.
    record_fields: tuple[FieldSpec, ...] = attrs.field(init=False, eq=False, hash=False, repr=False)

    @record_fields.default
    def _record_fields(self) -> tuple[FieldSpec, ...]:
        return tuple(f for f in self.fields if f.name != SPARE)


@attrs.frozen
class Layouts:
    header: tuple[FieldSpec, ...]
    header_length: int
    by_tc: Mapping[str, TelegramLayout] = attrs.field(
        converter=lambda m: types.MappingProxyType(dict(m)), hash=False)
    #: name -> (start, end) byte offsets of the named header fields.
    header_spans: Mapping[str, tuple[int, int]] = attrs.field(
        init=False, eq=False, hash=False, repr=False)

    @header_spans.default
    def _header_spans(self) -> Mapping[str, tuple[int, int]]:
        spans, offset = {}, 0
        for spec in self.header:
            if spec.name != SPARE:
                spans[spec.name] = (offset, offset + spec.width)
            offset += spec.width
        return types.MappingProxyType(spans)

    def get(self, tc_code: str) -> TelegramLayout | None:
        return self.by_tc.get(tc_code)

    def by_name(self, name: str) -> TelegramLayout:
        for layout in self.by_tc.values():
            if layout.name == name:
                return layout
        raise KeyError(f"no telegram named {name!r} in the layout")

    @property
    def process_layouts(self) -> tuple[TelegramLayout, ...]:
        return tuple(lay for _, lay in sorted(self.by_tc.items()) if lay.kind == PROCESS)

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(sorted({lay.forward for lay in self.by_tc.values() if lay.forward}))

    @property
    def probe_length(self) -> int:
        """Bytes needed to judge a header: up to the end of tc_code, sequence_no, length."""
        return max(self.header_spans[n][1] for n in ("tc_code", "sequence_no", "length"))


def load_layouts(path: str | os.PathLike | None = None) -> Layouts:
    """Load and check a layout file; None loads the one packaged in ``ccl.data``."""
    if path is None:
        source = f"ccl.data/{DEFAULT_LAYOUT_RESOURCE}"
        try:
            resource = importlib.resources.files("ccl.data") / DEFAULT_LAYOUT_RESOURCE
            text = resource.read_text("utf-8")
        except (OSError, ModuleNotFoundError) as exc:
            raise LayoutError(f"{source}: packaged layout missing: {exc}") from None
    else:
        source = os.fspath(path)
        try:
            with open(source, encoding="utf-8") as handle:
                text = handle.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise LayoutError(f"{source}: cannot read layout file: {exc}") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LayoutError(f"{source}: not valid TOML: {exc}") from None
    try:
        return _build(document)
    except LayoutError as exc:
        raise LayoutError(f"{source}: {exc}") from None


def _build(document: dict) -> Layouts:
    _no_unknown_keys(document, _TOP_KEYS, "top level")
    header_doc = document.get("header")
    if not isinstance(header_doc, dict):
        raise LayoutError("missing [header] table")
    _no_unknown_keys(header_doc, {"fields", "length"}, "[header]")
    header = _fields(header_doc.get("fields"), "header")
    header_length = sum(f.width for f in header)
    _check_declared(header_doc, header_length, "header")
    _check_header(header)
    tc_width = next(f.width for f in header if f.name == "tc_code")
    length_width = next(f.width for f in header if f.name == "length")
    header_names = {f.name for f in header}

    entries = document.get("telegram")
    if not isinstance(entries, list) or not entries:
        raise LayoutError("no [[telegram]] entries")
    by_tc: dict[str, TelegramLayout] = {}
    names: set[str] = set()
    for index, entry in enumerate(entries, 1):
        layout = _telegram(entry, index, header_length, tc_width, header_names)
        where = f"TC {layout.tc_code}"
        if layout.tc_code in by_tc:
            raise LayoutError(f"{where}: TC code declared twice")
        if layout.name in names:
            raise LayoutError(f"{where}: telegram name {layout.name!r} used twice")
        if len(str(layout.length)) > length_width:
            raise LayoutError(f"{where}: length {layout.length} does not fit the "
                              f"{length_width}-digit header length field")
        by_tc[layout.tc_code] = layout
        names.add(layout.name)
    for name, kind in REQUIRED_KIND.items():
        if name not in names:
            raise LayoutError(f"no telegram named {name!r} (kind {kind}); replies and "
                              f"keep-alives need it")
    return Layouts(header=header, header_length=header_length, by_tc=by_tc)


def _telegram(entry: object, index: int, header_length: int, tc_width: int,
              header_names: set[str]) -> TelegramLayout:
    if not isinstance(entry, dict):
        raise LayoutError(f"[[telegram]] #{index} is not a table")
    tc_code = entry.get("tc_code")
    if not (isinstance(tc_code, str) and len(tc_code) == tc_width and tc_code.isascii()
            and tc_code.isdigit()):
        raise LayoutError(f"[[telegram]] #{index}: tc_code must be a string of {tc_width} "
                          f"digits (quoted), got {tc_code!r}")
    where = f"TC {tc_code}"
    _no_unknown_keys(entry, _TELEGRAM_KEYS, where)
    name, kind = entry.get("name"), entry.get("kind")
    if not (isinstance(name, str) and _IDENTIFIER.fullmatch(name)):
        raise LayoutError(f"{where}: name must be a lower-case identifier, got {name!r}")
    if kind not in KINDS:
        raise LayoutError(f"{where}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if name in REQUIRED_KIND and kind != REQUIRED_KIND[name]:
        raise LayoutError(f"{where}: telegram {name!r} must be of kind {REQUIRED_KIND[name]}")
    table, forward = entry.get("table"), entry.get("forward")
    if kind == PROCESS:
        if not (isinstance(table, str) and _IDENTIFIER.fullmatch(table)):
            raise LayoutError(f"{where}: a process telegram needs 'table', a lower-case "
                              f"SQL table name, got {table!r}")
        if forward is not None and not (isinstance(forward, str)
                                        and _IDENTIFIER.fullmatch(forward)):
            raise LayoutError(f"{where}: forward must be a lower-case channel name, "
                              f"got {forward!r}")
    elif table is not None or forward is not None:
        raise LayoutError(f"{where}: only process telegrams have 'table' or 'forward'")

    fields = _fields(entry.get("fields"), where)
    for spec in fields:
        if spec.name in header_names and spec.name != SPARE:
            raise LayoutError(f"{where}: body field {spec.name!r} clashes with the header "
                              f"field of that name")
    for field_name, field_type in REQUIRED_BODY.get(name, {}).items():
        spec = next((f for f in fields if f.name == field_name), None)
        if spec is None or spec.type != field_type:
            raise LayoutError(f"{where}: telegram {name!r} needs a field {field_name!r} "
                              f"of type {field_type}")
    acked = next((f for f in fields if f.name == "acked_tc_code"), None)
    if acked is not None and acked.width != tc_width:
        raise LayoutError(f"{where}: field 'acked_tc_code' must be {tc_width} wide like "
                          f"the header tc_code")
    length = header_length + sum(f.width for f in fields)
    _check_declared(entry, length, where)
    return TelegramLayout(tc_code=tc_code, name=name, kind=kind, length=length,
                          fields=fields, table=table, forward=forward)


def _fields(raw: object, where: str) -> tuple[FieldSpec, ...]:
    if not isinstance(raw, list) or not raw:
        raise LayoutError(f"{where}: 'fields' must be a non-empty list of "
                          f"{{ name = ..., width = ..., type = ... }}")
    specs: list[FieldSpec] = []
    seen: set[str] = set()
    for position, item in enumerate(raw, 1):
        if not isinstance(item, dict):
            raise LayoutError(f"{where}: field #{position} is not a table")
        name = item.get("name")
        if not (isinstance(name, str) and _IDENTIFIER.fullmatch(name)):
            raise LayoutError(f"{where}: field #{position}: name must be a lower-case "
                              f"identifier, got {name!r}")
        at = f"{where}, field {name!r}"
        _no_unknown_keys(item, _FIELD_KEYS, at)
        if name in seen and name != SPARE:
            raise LayoutError(f"{at}: declared twice")
        seen.add(name)
        width, kind, scale = item.get("width"), item.get("type"), item.get("scale", 0)
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise LayoutError(f"{at}: width must be a positive whole number, got {width!r}")
        if kind not in FIELD_TYPES:
            raise LayoutError(f"{at}: type must be one of {', '.join(sorted(FIELD_TYPES))}, "
                              f"got {kind!r}")
        if isinstance(scale, bool) or not isinstance(scale, int) or scale < 0:
            raise LayoutError(f"{at}: scale must be a whole number >= 0, got {scale!r}")
        if scale and kind != DECIMAL:
            raise LayoutError(f"{at}: only decimal fields have a scale")
        if kind in _FIXED_WIDTH and width != _FIXED_WIDTH[kind]:
            raise LayoutError(f"{at}: a {kind} field is {_FIXED_WIDTH[kind]} bytes wide, "
                              f"got {width}")
        specs.append(FieldSpec(name=name, width=width, type=kind, scale=scale))
    return tuple(specs)


def _check_header(header: tuple[FieldSpec, ...]) -> None:
    present = {f.name: f for f in header}
    for name, kind in REQUIRED_HEADER.items():
        if name not in present:
            raise LayoutError(f"header: missing field {name!r} (type {kind})")
        if present[name].type != kind:
            raise LayoutError(f"header, field {name!r}: must be of type {kind}, "
                              f"got {present[name].type}")
    extra = set(present) - set(REQUIRED_HEADER) - {SPARE}
    if extra:
        raise LayoutError(f"header: unexpected field(s) {', '.join(sorted(extra))}; header "
                          f"bytes the system does not use must be named 'spare'")


def _check_declared(table: dict, computed: int, where: str) -> None:
    declared = table.get("length")
    if declared is None:
        return
    if isinstance(declared, bool) or not isinstance(declared, int):
        raise LayoutError(f"{where}: length must be a whole number, got {declared!r}")
    if declared != computed:
        raise LayoutError(f"{where}: declared length {declared} but the field widths add "
                          f"up to {computed}")


def _no_unknown_keys(table: dict, allowed: frozenset | set, where: str) -> None:
    unknown = set(table) - set(allowed)
    if unknown:
        raise LayoutError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} "
                          f"(allowed: {', '.join(sorted(allowed))})")
