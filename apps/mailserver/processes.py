"""Several server processes on one node, sharing the listening ports.

One Python process runs Python code on one core at a time (the GIL). With `processes` > 1
the supervisor binds every socket, then forks copies of itself before any thread or
event loop exists; each copy binds its own socket on each port with SO_REUSEPORT, and
the kernel spreads new connections over them by address hash. (One shared socket would
hand a burst of connections to whichever process woke first: ten long SMTP sessions
all in one process.) The first process also runs the web application and the embedded
Celery worker.

Everything the processes share goes through the store or the cache: change events for
IDLE come from the database poller (or Redis), the folder index is a per-process cache
that is correct whichever process wrote, and failed logins and submission rates are
counted in the cache (Redis, or with several processes and no Redis a file cache in the
data directory: settings.py). Connection limits are counted per process.

A copy that dies is logged and not replaced (forking a process that runs threads is not
safe); its socket leaves the port's group and the others take its new connections.
SIGTERM to the first process stops them all; a copy whose parent dies gets SIGTERM from
the kernel.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
import socket
import time
from dataclasses import replace

from django.conf import settings
from django.db import connections

from apps.mailserver import listeners, tls
from apps.mailserver.supervisor import WEB_LISTENERS, Supervisor

log = logging.getLogger(__name__)
_PR_SET_PDEATHSIG = 1  # prctl(2)
STOP_SECONDS = 20  # for the copies to finish at shutdown, then SIGKILL


def serve(supervisor: Supervisor, processes: int) -> None:
    """Run `supervisor` in this process and `processes - 1` forked copies."""
    if processes <= 1:
        asyncio.run(supervisor.run())
        return
    supervisor.bind(reuse_port=True)
    tls.ensure_certificate(
        settings.TLS_CERT_FILE, settings.TLS_KEY_FILE, settings.MAILHOST_HOSTNAME
    )
    connections.close_all()  # a connection must never be shared across a fork
    children = [_fork(supervisor) for _ in range(processes - 1)]
    print(f"processes: {processes} (pids {os.getpid()} {' '.join(map(str, children))})", flush=True)
    try:
        asyncio.run(supervisor.run())
    finally:
        _stop(children)


def _fork(supervisor: Supervisor) -> int:
    pid = os.fork()
    if pid:
        return pid
    status = 0
    try:
        _die_with_parent()
        copy = replace(
            supervisor,
            run_worker=False,
            announce=False,
            renew_certificates=False,
            file_left_over=False,
            sockets=_own_sockets(supervisor),
        )
        asyncio.run(copy.run())
    except BaseException:
        log.exception("server process %s failed", os.getpid())
        status = 1
    finally:
        os._exit(status)  # never return into the parent's code


def _own_sockets(supervisor: Supervisor) -> dict[str, socket.socket]:
    """This copy's sockets on the first process's ports (its inherited ones closed)."""
    own = {}
    for name, inherited in supervisor.sockets.items():
        if name not in WEB_LISTENERS:
            host, port = supervisor.bound[name]
            own[name] = listeners.bind(host, port, reuse_port=True)
        inherited.close()
    return own


def _die_with_parent() -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the parent's SIGTERM still reaches it
        pass


def _stop(children: list[int]) -> None:
    for pid in children:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_SECONDS
    waiting = set(children)
    while waiting and time.monotonic() < deadline:
        for pid in list(waiting):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                waiting.discard(pid)
                if status:
                    log.warning("server process %s exited with status %s", pid, status)
        time.sleep(0.05)
    for pid in waiting:
        log.warning("server process %s did not stop; killing it", pid)
        _signal(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
