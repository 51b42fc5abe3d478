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
import ssl
from contextlib import contextmanager
from dataclasses import dataclass, field

import uvicorn
from django.conf import settings

from apps.mailserver import executor, listeners, renewal, tls, tlsbuffers, worker
from apps.mailserver.certificates import CertificateStore
from apps.mailstore import events, inbound
from mailhost.threads import in_thread

log = logging.getLogger(__name__)
WEB = "web"
HTTP = "http"  # port 80: the same web app, where ACME's HTTP-01 challenges arrive
WEBS = "webs"  # the same web app over TLS, certificates chosen by name (SNI) as elsewhere
WEB_LISTENERS = (WEB, HTTP, WEBS)


class _EmbeddedUvicorn(uvicorn.Server):
    """uvicorn without its own signal handlers: the supervisor owns SIGTERM."""

    @contextmanager
    def capture_signals(self):
        yield


def _web_config(context: ssl.SSLContext | None) -> uvicorn.Config:
    """uvicorn for the web app; over TLS when given a context (used as it is, not one
    uvicorn makes from files)."""
    return uvicorn.Config(
        "mailhost.asgi:application",
        lifespan="off",
        log_level="warning",
        proxy_headers=True,
        server_header=False,
        ssl_context_factory=(lambda config, default: context) if context is not None else None,
    )


@dataclass
class Supervisor:
    addresses: dict[str, tuple[str, int] | None]
    run_worker: bool = True
    install_signal_handlers: bool = True
    announce: bool = True
    # The start-up certificate check: the first process only (processes.py).
    renew_certificates: bool = True
    # Filing what a crash left accepted but unfiled: the first process only, too.
    file_left_over: bool = True
    bound: dict[str, tuple[str, int]] = field(default_factory=dict)
    sockets: dict[str, socket.socket] = field(default_factory=dict)
    ready: asyncio.Event | None = None
    _web_servers: list[uvicorn.Server] = field(default_factory=list)

    def bind(self, *, reuse_port: bool = False) -> None:
        """Bind every configured address (port 0 gets a free port). `run` does this when
        it has not been done; processes.serve does it first, so that the other processes
        can bind the ports it got (`reuse_port`)."""
        for name, address in self.addresses.items():
            if address is None or (
                name not in WEB_LISTENERS and listeners.starter_for(name) is None
            ):
                continue
            sock = listeners.bind(*address, reuse_port=reuse_port)
            self.sockets[name] = sock
            self.bound[name] = sock.getsockname()[:2]

    async def run(self) -> None:
        asyncio.get_running_loop().set_default_executor(executor.DatabaseExecutor())
        tlsbuffers.install()
        self.stop = asyncio.Event()
        self.ready = self.ready or asyncio.Event()
        cert_file, key_file = tls.default_pair(settings.MAILHOST_HOSTNAME)
        if not self.sockets:
            self.bind()
        certificates = CertificateStore(cert_file, key_file, settings.TLS_CERTS_DIR)
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
        # Taken before the listeners open, so the mail this start accepts is not in it.
        left_over = await self._left_over() if self.file_left_over else None
        servers = await self._start_listeners(context)
        background = [asyncio.create_task(self._change_events())]
        if left_over is not None:
            background.append(asyncio.create_task(self._file_left_over(*left_over)))
        background += self._start_web(context.tls)
        if self.renew_certificates:
            # After the web listener is up: the CA's HTTP-01 request must find it.
            background.append(asyncio.create_task(self._renew_certificates()))
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
            if name not in WEB_LISTENERS and starter is not None:
                servers.append(await starter(context, name, sock))
        return servers

    def _start_web(self, tls_context: ssl.SSLContext) -> list[asyncio.Task]:
        """The web app on the plain web sockets, and on the TLS one with the context every
        TLS listener shares (SNI, certificates reloaded while running)."""
        plain = [self.sockets[name] for name in (WEB, HTTP) if name in self.sockets]
        secure = [self.sockets[WEBS]] if WEBS in self.sockets else []
        tasks = []
        for socks, context in ((plain, None), (secure, tls_context)):
            if socks:
                server = _EmbeddedUvicorn(_web_config(context))
                self._web_servers.append(server)
                tasks.append(asyncio.create_task(server.serve(sockets=socks)))
        return tasks

    async def _renew_certificates(self) -> None:
        """The start-up check (the worker repeats it periodically): a certificate missing or
        due is ordered now rather than at the next periodic run."""
        try:
            outcome = await in_thread(renewal.renew)
        except Exception:  # a bad certificate check must not take the mail server down
            log.exception("the start-up certificate check failed")
            return
        log.info("certificate check at start-up: %s", outcome)

    async def _left_over(self) -> tuple[int, int] | None:
        try:
            return await in_thread(inbound.left_over)
        except Exception:  # the database is down: the sweep will find them
            log.exception("could not look for mail accepted before start-up")
            return None

    async def _file_left_over(self, first_id: int, last_id: int) -> None:
        """Mail acknowledged before a crash and not yet filed is filed now, in this
        process: the worker takes seconds to start, and the sweep finds it only after
        30 s. New mail is not held up: the listeners are already serving."""
        try:
            filed = await in_thread(inbound.process, first_id, last_id)
        except Exception:  # the sweep files it later; the server must keep running
            log.exception("filing the mail accepted before start-up failed")
            return
        if filed:
            log.info("filed %s messages accepted before start-up", filed)

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
        for web in self._web_servers:
            web.should_exit = True
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
