"""Counters and gauges of a service, rendered in the Prometheus text format.

Kept tiny on purpose: the services need labelled counters, gauges (set or computed on
read) and one text rendering; the orchestrator parses the same text back.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping

_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LabelKey = tuple[tuple[str, str], ...]


def _key(labels: Mapping[str, object] | None) -> LabelKey:
    if not labels:
        return ()
    if len(labels) == 1:  # the common case on hot paths (tc=..., result=...): no sort needed
        (name, value), = labels.items()
        return ((name, value if type(value) is str else str(value)),)
    return tuple(sorted((k, str(v)) for k, v in labels.items()))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _format_value(value: float) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


class _Metric:
    kind = "untyped"

    def __init__(self, name: str, help_text: str):
        if not _NAME.match(name):
            raise ValueError(f"bad metric name {name!r}")
        self.name = name
        self.help = help_text
        self._values: dict[LabelKey, float] = {}

    def value(self, **labels: object) -> float:
        return self._values.get(_key(labels), 0)

    def samples(self) -> Iterable[tuple[LabelKey, float]]:
        return sorted(self._values.items())


class Counter(_Metric):
    kind = "counter"

    def inc(self, amount: float = 1, **labels: object) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        key = _key(labels)
        self._values[key] = self._values.get(key, 0) + amount


class Gauge(_Metric):
    kind = "gauge"

    def __init__(self, name: str, help_text: str, read: Callable[[], Mapping[LabelKey, float] | float] | None = None):
        super().__init__(name, help_text)
        self._read = read

    def set(self, value: float, **labels: object) -> None:
        self._values[_key(labels)] = value

    def samples(self) -> Iterable[tuple[LabelKey, float]]:
        if self._read is None:
            return super().samples()
        current = self._read()
        if isinstance(current, Mapping):
            return sorted(current.items())
        return [((), current)]


class Registry:
    """The metrics of one service; ``render()`` is the body of ``GET /metrics``."""

    def __init__(self, prefix: str = "ccl_"):
        self._prefix = prefix
        self._metrics: dict[str, _Metric] = {}

    def counter(self, name: str, help_text: str) -> Counter:
        return self._add(Counter(self._prefix + name, help_text))

    def gauge(self, name: str, help_text: str, read=None) -> Gauge:
        return self._add(Gauge(self._prefix + name, help_text, read))

    def _add(self, metric):
        if metric.name in self._metrics:
            raise ValueError(f"metric {metric.name} registered twice")
        self._metrics[metric.name] = metric
        return metric

    def render(self) -> str:
        lines = []
        for metric in self._metrics.values():
            lines.append(f"# HELP {metric.name} {metric.help}")
            lines.append(f"# TYPE {metric.name} {metric.kind}")
            for labels, value in metric.samples():
                label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
                suffix = "{" + label_text + "}" if label_text else ""
                lines.append(f"{metric.name}{suffix} {_format_value(value)}")
        return "\n".join(lines) + "\n"


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_text(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Samples of a Prometheus text body: (name, labels, value). Comments and junk lines are skipped."""
    samples = []
    for line in text.splitlines():
        match = _SAMPLE.match(line.strip())
        if not match or line.startswith("#"):
            continue
        labels = {k: v.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
                  for k, v in _LABEL.findall(match.group(2) or "")}
        try:
            samples.append((match.group(1), labels, float(match.group(3))))
        except ValueError:
            continue
    return samples
