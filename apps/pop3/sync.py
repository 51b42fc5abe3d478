"""Synchronous store and account calls, run off the event loop.

DESIGN: protocol sessions never touch the database from the loop; each call runs in a
worker thread, one transaction per unit of work.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from apps.mailserver import executor


def in_thread(fn: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    return executor.in_thread(fn)
