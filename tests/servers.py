"""Run the real supervisor (every registered listener) on 127.0.0.1 port 0 in a thread."""

from __future__ import annotations

import asyncio
import threading

from apps.mailserver.supervisor import Supervisor

LISTENER_NAMES = ("smtp", "submission", "submissions", "imap", "imaps", "pop3", "pop3s", "web")


class RunningServer:
    """A supervisor on its own loop in a background thread; `port(name)` says where."""

    def __init__(self, names: tuple[str, ...] = LISTENER_NAMES) -> None:
        addresses: dict[str, tuple[str, int] | None] = {n: ("127.0.0.1", 0) for n in names}
        self.supervisor = Supervisor(addresses, run_worker=False, install_signal_handlers=False)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="mailserver", daemon=True)
        self.started = threading.Event()
        self.error: BaseException | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._main())
        except BaseException as exc:
            self.error = exc
            self.started.set()
        finally:
            # As asyncio.run does for `runmailserver`: sessions still open when the
            # supervisor returns are cancelled and run their cleanup on this loop, rather
            # than being collected half-done during some later test.
            pending = asyncio.all_tasks(self.loop)
            for task in pending:
                task.cancel()
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    async def _main(self) -> None:
        self.supervisor.ready = asyncio.Event()
        task = asyncio.create_task(self.supervisor.run())
        ready = asyncio.create_task(self.supervisor.ready.wait())
        await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # start-up failed: raise it in start()
        self.started.set()
        await task

    def start(self) -> RunningServer:
        self.thread.start()
        self.started.wait(30)
        if self.error:
            raise self.error
        return self

    def port(self, name: str) -> int:
        return self.supervisor.bound[name][1]

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.supervisor.stop.set)
        self.thread.join(30)
