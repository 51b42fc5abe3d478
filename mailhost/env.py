"""Typed helpers that read settings from the environment and fail loudly on bad values.

A `NAME_FILE` variable, when set, names a file holding the value (for secrets kept out of
the environment), following the convention of Docker and systemd credentials.
"""

from __future__ import annotations

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    """The variable's text, or the contents of the file named by NAME_FILE, or `default`."""
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        try:
            return Path(file_name).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={file_name}: {exc}") from exc
    return os.environ.get(name, default)


def env_int(name: str, default: int) -> int:
    raw = env_str(name, "")
    if raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number") from None


def env_bool(name: str, default: bool) -> bool:
    raw = env_str(name, "").strip().lower()
    if name not in os.environ and f"{name}_FILE" not in os.environ:
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use 1/0, true/false, yes/no)")


def env_list(name: str, default: list[str]) -> list[str]:
    raw = env_str(name, "")
    if raw.strip() == "":
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_path(name: str, default: Path) -> Path:
    raw = env_str(name, "")
    return Path(raw).expanduser().resolve() if raw else default.resolve()


def env_address(name: str, default: str) -> tuple[str, int] | None:
    """A listener address `host:port`, `[v6]:port` or `off` (None)."""
    raw = env_str(name, default).strip()
    if raw.lower() in {"off", "none", "disabled"}:
        return None
    host, sep, port = raw.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ImproperlyConfigured(f"{name}={raw!r} is not host:port or 'off'")
    return host.strip("[]") or "0.0.0.0", int(port)
