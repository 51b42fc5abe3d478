"""Runs every listener, the web application and (embedded) the Celery worker on one loop.

`Supervisor.run()` binds the configured addresses, starts what is registered for each,
prints where it listens, and on SIGTERM/SIGINT closes listeners, stops the worker and
returns.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from contextlib import contextmanager
from dataclasses import dataclass, field

import uvicorn
from django.conf import settings

from apps.mailserver import executor, listeners, tls, worker
from apps.mailserver.certificates import CertificateStore
from apps.mailstore import events

log = logging.getLogger(__name__)
WEB = "web"


class _EmbeddedUvicorn(uvicorn.Server):
    """uvicorn without its own signal handlers: the supervisor owns SIGTERM."""

    @contextmanager
    def capture_signals(self):
        yield


@dataclass
class Supervisor:
    addresses: dict[str, tuple[str, int] | None]
    run_worker: bool = True
    install_signal_handlers: bool = True
    announce: bool = True
    bound: dict[str, tuple[str, int]] = field(default_factory=dict)
    sockets: dict[str, socket.socket] = field(default_factory=dict)
    ready: asyncio.Event | None = None

    def bind(self, *, reuse_port: bool = False) -> None:
        """Bind every configured address (port 0 gets a free port). `run` does this when
        it has not been done; processes.serve does it first, so that the other processes
        can bind the ports it got (`reuse_port`)."""
        for name, address in self.addresses.items():
            if address is None or (name != WEB and listeners.starter_for(name) is None):
                continue
            sock = listeners.bind(*address, reuse_port=reuse_port)
            self.sockets[name] = sock
            self.bound[name] = sock.getsockname()[:2]

    async def run(self) -> None:
        asyncio.get_running_loop().set_default_executor(executor.DatabaseExecutor())
        tls.fit_read_buffers()
        self.stop = asyncio.Event()
        self.ready = self.ready or asyncio.Event()
        tls.ensure_certificate(
            settings.TLS_CERT_FILE, settings.TLS_KEY_FILE, settings.MAILHOST_HOSTNAME
        )
        if not self.sockets:
            self.bind()
        certificates = CertificateStore(
            settings.TLS_CERT_FILE, settings.TLS_KEY_FILE, settings.TLS_CERTS_DIR
        )
        context = listeners.ServerContext(
            hostname=settings.MAILHOST_HOSTNAME,
            tls=certificates.server_context(settings.TLS_PROFILE),
            mx_tls=certificates.server_context(tls.INTERMEDIATE),
            stop=self.stop,
        )
        if self.install_signal_handlers:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.stop.set)
        servers = await self._start_listeners(context)
        background = [asyncio.create_task(self._change_events())]
        web = self._start_web()
        if web is not None:
            background.append(web)
        child = worker.WorkerProcess() if self.run_worker else None
        if child is not None:
            background.append(asyncio.create_task(child.supervise(self.stop)))
        if self.announce:
            self._announce()
        self.ready.set()
        await self.stop.wait()
        await self._shutdown(servers, background)

    async def _start_listeners(self, context: listeners.ServerContext) -> list:
        servers = []
        for name, sock in self.sockets.items():
            starter = listeners.starter_for(name)
            if name != WEB and starter is not None:
                servers.append(await starter(context, name, sock))
        return servers

    def _start_web(self) -> asyncio.Task | None:
        sock = self.sockets.get(WEB)
        if sock is None:
            return None
        config = uvicorn.Config(
            "mailhost.asgi:application",
            lifespan="off",
            log_level="warning",
            proxy_headers=True,
            server_header=False,
        )
        self._web = _EmbeddedUvicorn(config)
        return asyncio.create_task(self._web.serve(sockets=[sock]))

    async def _change_events(self) -> None:
        if settings.REDIS_URL:
            await events.run_redis_listener(self.stop)
        else:
            await events.run_database_poller(self.stop)

    def _announce(self) -> None:
        for name, (host, port) in self.bound.items():
            print(f"listening: {name:<12} {host}:{port}", flush=True)
        if not self.bound:
            print("listening: nothing (every listener is off)", flush=True)

    async def _shutdown(self, servers: list, background: list[asyncio.Task]) -> None:
        if self.announce:
            print("stopping", flush=True)
        for server in servers:
            server.close()
        if getattr(self, "_web", None) is not None:
            self._web.should_exit = True
        _, pending = await asyncio.wait(background, timeout=10)
        for task in pending:
            task.cancel()
        for server in servers:
            try:
                await asyncio.wait_for(server.wait_closed(), 5)
            except TimeoutError:
                log.warning("a listener still had open sessions at shutdown")
        if self.announce:
            print("stopped", flush=True)
