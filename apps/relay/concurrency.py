"""How many connections may carry mail to one destination at once, across every worker
process and node: a window that opens while deliveries succeed and closes on failures, as
Postfix's slow start does (qmgr(8): destination concurrency feedback), and slots held
under it.

In the embedded default (one machine) a slot is an flock on a file, which the kernel
frees when the process holding it dies; the window is a small file. Scaled out, both
live in Redis: a sorted set of slot holders scored by when their lease ends, and the
window in a key, each changed by one Lua script so the check and the change are atomic.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

WAIT_STEP = 0.02  # seconds between looks for a free slot


@dataclass(frozen=True)
class Window:
    """Slow start (Postfix's defaults in spirit): begin with `initial` connections, add
    one for every `window` deliveries that succeed, take one away on each failure (a
    refused or dropped connection, a timeout, a 4xx for a whole transaction)."""

    initial: int
    maximum: int

    def opened(self, window: float) -> float:
        return min(window + 1 / max(window, 1), float(self.maximum))

    def closed(self, window: float) -> float:
        return max(window - 1, 1.0)


class Limiter(Protocol):
    window: Window

    def take(self, destination: str) -> Any | None:
        """A slot (an opaque handle) if fewer than the window's connections are open."""

    def give(self, destination: str, held: Any) -> None:
        """Free a slot."""

    def feedback(self, destination: str, success: bool) -> float:
        """Open or close the destination's window; returns its new size."""

    def size(self, destination: str) -> float:
        """The destination's window now."""


class Busy(Exception):
    """Every slot of the destination stayed taken for the whole wait."""


@contextmanager
def slot(limiter: Limiter, destination: str, wait: float) -> Iterator[None]:
    """Hold one of the destination's slots, waiting up to `wait` seconds; Busy if none."""
    deadline = time.monotonic() + wait
    while (held := limiter.take(destination)) is None:
        if time.monotonic() >= deadline:
            raise Busy(destination)
        time.sleep(WAIT_STEP)
    try:
        yield
    finally:
        limiter.give(destination, held)


class FileLimiter:
    """One machine: slot i of a destination is an exclusive flock on its file i."""

    def __init__(self, directory: Path, window: Window) -> None:
        self.directory = directory
        self.window = window

    def _place(self, destination: str) -> Path:
        place = self.directory / quote(destination, safe="")
        place.mkdir(parents=True, exist_ok=True)
        return place

    def take(self, destination: str) -> int | None:
        place = self._place(destination)
        for index in range(int(self.size(destination))):
            fd = os.open(place / f"slot-{index}", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            return fd
        return None

    def give(self, destination: str, held: int) -> None:
        os.close(held)  # closing the file releases its lock

    def size(self, destination: str) -> float:
        try:
            return float((self._place(destination) / "window").read_text())
        except (FileNotFoundError, ValueError):
            return float(self.window.initial)

    def feedback(self, destination: str, success: bool) -> float:
        place = self._place(destination)
        with open(place / "window.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # read, change and write as one step
            now = self.size(destination)
            new = self.window.opened(now) if success else self.window.closed(now)
            if new != now:
                partial = place / f"window.{os.getpid()}.{threading.get_ident()}"
                partial.write_text(repr(new))
                os.replace(partial, place / "window")  # a reader sees old or new, whole
        return new


# KEYS[1]: holders (sorted set, score = lease end), KEYS[2]: window. ARGV: now, lease end,
# token, initial window.
_TAKE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local window = tonumber(redis.call('GET', KEYS[2]) or ARGV[4])
if redis.call('ZCARD', KEYS[1]) < math.floor(window) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
  redis.call('EXPIRE', KEYS[1], 86400)
  return 1
end
return 0
"""
# KEYS[1]: window. ARGV: initial, maximum, 1 for a success or 0 for a failure.
_FEEDBACK = """
local window = tonumber(redis.call('GET', KEYS[1]) or ARGV[1])
if ARGV[3] == '1' then
  window = math.min(window + 1 / math.max(window, 1), tonumber(ARGV[2]))
else
  window = math.max(window - 1, 1)
end
redis.call('SET', KEYS[1], tostring(window), 'EX', 86400)
return tostring(window)
"""


class RedisLimiter:
    """Every node: holders and windows in Redis. A holder that dies without giving its
    slot back loses it when its lease ends."""

    def __init__(self, client: Any, prefix: str, window: Window, lease: float) -> None:
        self.client = client
        self.prefix = prefix
        self.window = window
        self.lease = lease
        self._take = client.register_script(_TAKE)
        self._feedback = client.register_script(_FEEDBACK)

    def _keys(self, destination: str) -> list[str]:
        return [f"{self.prefix}:{destination}:holders", f"{self.prefix}:{destination}:window"]

    def take(self, destination: str) -> str | None:
        token = secrets.token_hex(8)
        now = time.time()
        args = [now, now + self.lease, token, self.window.initial]
        return token if self._take(keys=self._keys(destination), args=args) else None

    def give(self, destination: str, held: str) -> None:
        self.client.zrem(self._keys(destination)[0], held)

    def size(self, destination: str) -> float:
        value = self.client.get(self._keys(destination)[1])
        return float(value) if value is not None else float(self.window.initial)

    def feedback(self, destination: str, success: bool) -> float:
        args = [self.window.initial, self.window.maximum, int(success)]
        return float(self._feedback(keys=self._keys(destination)[1:], args=args))


_limiter: Limiter | None = None
_limiter_lock = threading.Lock()


def shared_limiter() -> Limiter:
    """This installation's limiter: Redis when there is one, else files in the data dir."""
    global _limiter
    from django.conf import settings

    with _limiter_lock:
        if _limiter is None:
            window = Window(settings.RELAY_INITIAL_CONCURRENCY, settings.RELAY_MAX_PER_DESTINATION)
            if settings.REDIS_URL:
                import redis

                prefix = f"mailhost:{settings.CELERY_TASK_DEFAULT_QUEUE}:relay"
                lease = 2 * settings.RELAY_TIMEOUT + 60
                client = redis.Redis.from_url(settings.REDIS_URL)
                _limiter = RedisLimiter(client, prefix, window, lease)
            else:
                _limiter = FileLimiter(Path(settings.DATA_DIR) / "relay-slots", window)
        return _limiter
