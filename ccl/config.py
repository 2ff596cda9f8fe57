"""One configuration for every service: packaged defaults, an INI file, CCL_* variables.

Order of precedence: ``CCL_<SECTION>_<KEY>`` environment variables, then the file named
by ``CCL_CONFIG``, then ``ccl/data/ccl.ini``. Every key must exist in the defaults, so a
typo in a plant's file stops start-up instead of being silently ignored.
"""

from __future__ import annotations

import configparser
import ipaddress
import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class ConfigError(ValueError):
    """A setting is missing, unknown or of the wrong kind; the message names it."""


def _defaults_text() -> str:
    return resources.files("ccl.data").joinpath("ccl.ini").read_text(encoding="utf-8")


def env_name(section: str, key: str) -> str:
    return f"CCL_{section}_{key}".upper()


class Config:
    """Read-only view of the merged settings with typed accessors."""

    def __init__(self, values: Mapping[str, Mapping[str, str]], origin: Mapping[tuple[str, str], str]):
        self._values = {s: dict(v) for s, v in values.items()}
        self._origin = dict(origin)

    def where(self, section: str, key: str) -> str:
        """Human name of the place a setting came from, for error messages."""
        return self._origin.get((section, key), f"[{section}] {key}")

    def _raw(self, section: str, key: str) -> str:
        try:
            return self._values[section][key]
        except KeyError:
            raise ConfigError(f"unknown setting [{section}] {key}") from None

    def get(self, section: str, key: str) -> str:
        return self._raw(section, key).strip()

    def get_int(self, section: str, key: str, minimum: int | None = None, maximum: int | None = None) -> int:
        text = self.get(section, key)
        try:
            value = int(text)
        except ValueError:
            raise ConfigError(f"{self.where(section, key)}: {text!r} is not a whole number") from None
        self._check_range(section, key, value, minimum, maximum)
        return value

    def get_float(self, section: str, key: str, minimum: float | None = None, maximum: float | None = None) -> float:
        text = self.get(section, key)
        try:
            value = float(text)
        except ValueError:
            raise ConfigError(f"{self.where(section, key)}: {text!r} is not a number") from None
        self._check_range(section, key, value, minimum, maximum)
        return value

    def get_bool(self, section: str, key: str) -> bool:
        text = self.get(section, key).lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ConfigError(f"{self.where(section, key)}: {text!r} is not true/false")

    def get_path(self, section: str, key: str) -> Path:
        text = self.get(section, key)
        if not text:
            raise ConfigError(f"{self.where(section, key)}: a path is required")
        return Path(text).expanduser().absolute()

    def get_list(self, section: str, key: str) -> list[str]:
        return [item.strip() for item in self.get(section, key).split(",") if item.strip()]

    def get_networks(self, section: str, key: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        networks = []
        for item in self.get_list(section, key):
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ConfigError(f"{self.where(section, key)}: {item!r} is not an address or network") from None
        return networks

    def get_endpoint(self, section: str, key: str) -> str:
        """A server endpoint string, checked for shape (the reactor parses it fully)."""
        text = self.get(section, key)
        kind, _, rest = text.partition(":")
        if kind not in {"tcp", "tcp6", "unix", "ssl"} or not rest:
            raise ConfigError(f"{self.where(section, key)}: {text!r} is not an endpoint like tcp:9304")
        if kind in {"tcp", "tcp6", "ssl"}:
            port = rest.split(":", 1)[0]
            if port.startswith("port="):
                port = port[5:]
            if not port.isdigit() or not 0 <= int(port) <= 65535:
                raise ConfigError(f"{self.where(section, key)}: {text!r} has no valid port")
        return text

    def _check_range(self, section, key, value, minimum, maximum) -> None:
        if minimum is not None and value < minimum:
            raise ConfigError(f"{self.where(section, key)}: {value} is below the minimum {minimum}")
        if maximum is not None and value > maximum:
            raise ConfigError(f"{self.where(section, key)}: {value} is above the maximum {maximum}")

    def sections(self) -> dict[str, dict[str, str]]:
        return {s: dict(v) for s, v in self._values.items()}


def load_config(environ: Mapping[str, str] | None = None) -> Config:
    """Merge defaults, the CCL_CONFIG file and CCL_* variables; raise ConfigError on any mistake."""
    environ = os.environ if environ is None else environ
    defaults = configparser.ConfigParser(interpolation=None)
    defaults.read_string(_defaults_text(), source="ccl/data/ccl.ini")
    values = {s: dict(defaults.items(s)) for s in defaults.sections()}
    origin: dict[tuple[str, str], str] = {}

    path = environ.get("CCL_CONFIG", "").strip()
    if path:
        plant = configparser.ConfigParser(interpolation=None)
        try:
            with open(path, encoding="utf-8") as handle:
                plant.read_file(handle, source=path)
        except OSError as error:
            raise ConfigError(f"CCL_CONFIG: cannot read {path}: {error.strerror}") from None
        except configparser.Error as error:
            raise ConfigError(f"CCL_CONFIG: {path} is not a valid INI file: {error.message}") from None
        for section in plant.sections():
            if section not in values:
                raise ConfigError(f"{path}: unknown section [{section}]")
            for key, value in plant.items(section):
                if key not in values[section]:
                    raise ConfigError(f"{path}: unknown setting [{section}] {key}")
                values[section][key] = value
                origin[(section, key)] = f"[{section}] {key} in {path}"

    for section, keys in values.items():
        for key in keys:
            name = env_name(section, key)
            if name in environ:
                values[section][key] = environ[name]
                origin[(section, key)] = name
    known = {env_name(s, k) for s, keys in values.items() for k in keys}
    for name in environ:
        if name.startswith("CCL_") and name not in known and name not in _NOT_SETTINGS:
            if name.startswith(("CCL_TEST_", "CCL_BENCH_")):
                continue
            raise ConfigError(f"{name}: no such setting (see ccl/data/ccl.ini)")
    return Config(values, origin)


# Variables that share the prefix but are not settings.
_NOT_SETTINGS = {"CCL_CONFIG", "CCL_VENV"}
