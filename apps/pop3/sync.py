"""Synchronous store and account calls, run off the event loop.

DESIGN: protocol sessions never touch the database from the loop; each call runs in a
worker thread, one transaction per unit of work (`in_thread`, shared by every listener).
"""

from __future__ import annotations

from apps.mailserver.executor import in_thread

__all__ = ["in_thread"]
