"""The embedded Celery worker: a supervised child process, restarted if it dies.

Scaled out, `celery -A mailhost worker` runs on its own and runmailserver does not start
one (`--no-worker`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence

log = logging.getLogger(__name__)
RESTART_DELAYS = (1, 2, 5, 10, 30)  # seconds; reset after a worker stays up a minute


def worker_command(
    *,
    concurrency: int = 8,
    loglevel: str = "INFO",
    queues: Sequence[str] = (),
    beat_schedule: str | os.PathLike[str] | None = None,
    heartbeat: bool = True,
) -> list[str]:
    """The `celery worker` command line of every worker this project starts: the embedded
    one, the tests' and the benchmarks'. With `beat_schedule` it also runs the periodic
    sweeps (beat), keeping their last runs in that file: right for a single machine;
    scaled out, beat runs once on its own. `queues` limits it to those (a test's own)."""
    command = [sys.executable, "-m", "celery", "-A", "mailhost", "worker"]
    command += ["--pool", "threads", "--concurrency", str(concurrency)]  # filing waits on fsync
    command += ["--loglevel", loglevel, "--without-gossip", "--without-mingle"]
    if not heartbeat:
        command.append("--without-heartbeat")
    if queues:
        command += ["--queues", ",".join(queues)]
    if beat_schedule is not None:
        command += ["--beat", "--schedule", str(beat_schedule)]
    return command


class WorkerProcess:
    def __init__(self) -> None:
        self.process: asyncio.subprocess.Process | None = None

    async def supervise(self, stop: asyncio.Event) -> None:
        failures = 0
        while not stop.is_set():
            started = asyncio.get_running_loop().time()
            schedule = os.path.join(os.environ.get("MAILHOST_DATA_DIR", "var"), "celerybeat")
            command = worker_command(beat_schedule=schedule)
            self.process = await asyncio.create_subprocess_exec(*command)
            print(f"worker: celery started (pid {self.process.pid})", flush=True)
            waiter = asyncio.create_task(self.process.wait())
            stopper = asyncio.create_task(stop.wait())
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if stop.is_set():
                stopper.cancel()
                await self._terminate(waiter)
                return
            stopper.cancel()
            uptime = asyncio.get_running_loop().time() - started
            failures = 0 if uptime > 60 else failures + 1
            delay = RESTART_DELAYS[min(failures, len(RESTART_DELAYS) - 1)]
            log.warning(
                "celery worker exited with %s; restarting in %ss", self.process.returncode, delay
            )
            try:
                await asyncio.wait_for(stop.wait(), delay)
            except TimeoutError:
                pass

    async def _terminate(self, waiter: asyncio.Task) -> None:
        assert self.process is not None
        if self.process.returncode is None:
            # SIGTERM is Celery's warm shutdown: running tasks finish, then it exits.
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(waiter, 30)
            except TimeoutError:
                self.process.kill()
                await waiter
