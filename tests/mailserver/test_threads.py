"""`mailhost.threads.in_thread`, the one way every layer runs blocking work off the loop:
on the loop's default executor (the supervisor's database pool), with the caller's context
variables, arguments passed through."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor

from mailhost.threads import in_thread

caller = contextvars.ContextVar("caller", default="none")


def where(first: int, *, second: int) -> tuple[str, str, int]:
    return threading.current_thread().name, caller.get(), first + second


def test_it_runs_the_call_on_the_loops_executor_with_the_callers_context():
    async def main() -> tuple[str, str, int]:
        pool = ThreadPoolExecutor(1, thread_name_prefix="the-loops-pool")
        asyncio.get_running_loop().set_default_executor(pool)
        caller.set("a session")
        return await in_thread(where, 1, second=2)

    thread, context, total = asyncio.run(main())
    assert thread.startswith("the-loops-pool") and thread != threading.current_thread().name
    assert (context, total) == ("a session", 3)
