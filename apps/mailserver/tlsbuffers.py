"""One socket read buffer per thread for every asyncio TLS connection, instead of one each.

asyncio's TLS layer (`asyncio.sslproto.SSLProtocol`, Python 3.11-3.13) gives every
connection its own 256 KiB receive buffer, allocated up front: over IMAPS that was 256 of
the 316 KiB an idle IDLE session cost. The buffer only lives from `get_buffer()` to
`buffer_updated()`, which the transport calls back to back in one callback (read the
socket into it, then copy what came into the TLS object), so connections served by one
event loop can share one. Reads are TLS_READ_SIZE at a time: a TLS record holds at most
16 KiB of data (RFC 8446 §5.1), so a bulk transfer is no slower.
"""

from __future__ import annotations

import logging
import threading
from asyncio import sslproto
from typing import Any

log = logging.getLogger(__name__)
TLS_READ_SIZE = 32 * 1024
_per_thread = threading.local()


def _shared_view() -> memoryview:
    """This thread's buffer: an event loop runs on one thread, and a process may run
    several loops (the tests, the relay's worker threads)."""
    view = getattr(_per_thread, "view", None)
    if view is None:
        view = _per_thread.view = memoryview(bytearray(TLS_READ_SIZE))
    return view


class SharedBufferSSLProtocol(sslproto.SSLProtocol):
    """asyncio's TLS protocol, reading into its thread's shared buffer."""

    max_size = TLS_READ_SIZE  # also what one read of decrypted data may return

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ssl_buffer_view = _shared_view()  # the one of its own is freed here
        self._ssl_buffer = self._ssl_buffer_view.obj

    def get_buffer(self, n: int) -> memoryview:
        self._ssl_buffer_view = _shared_view()  # the loop's thread, as in __init__
        return self._ssl_buffer_view


def install() -> None:
    """Make asyncio create SharedBufferSSLProtocol for every TLS connection, in and out
    (base_events and selector_events look `sslproto.SSLProtocol` up at each use). Left
    alone, with a warning, on a Python whose SSLProtocol no longer has the buffer."""
    original = sslproto.SSLProtocol
    if original is SharedBufferSSLProtocol:
        return
    if not all(hasattr(original, name) for name in ("get_buffer", "buffer_updated", "max_size")):
        log.warning("asyncio's SSLProtocol changed; TLS connections keep their own buffers")
        return
    sslproto.SSLProtocol = SharedBufferSSLProtocol  # type: ignore[misc]
