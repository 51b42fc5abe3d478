"""The supervisor in-process: binds port 0, serves the web app, hears change events."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

from django.db import connection

from apps.mailstore import events

ROOT = Path(__file__).resolve().parents[2]


def test_the_web_listener_answers_on_the_port_it_reports(mailserver):
    url = f"http://127.0.0.1:{mailserver.port('web')}/healthz"
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        assert b'"ok"' in response.read()


def test_a_delivery_by_another_process_reaches_a_subscriber_within_a_second(
    mailserver, live_personas, settings
):
    alice = live_personas["alice"]

    async def wait_for_change() -> events.Change:
        subscription = events.subscribe(alice.id)
        try:
            writer = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.mailstore.deliver_loop",
                str(connection.settings_dict["NAME"]),
                str(alice.id),
                "1",
                "ev",
                cwd=ROOT,
                env={**os.environ, "MAILHOST_BLOB_DIR": str(settings.BLOB_DIR)},
                stdout=subprocess.DEVNULL,
            )
            assert await writer.wait() == 0
            started = asyncio.get_running_loop().time()
            change = await asyncio.wait_for(subscription.get(), timeout=5)
            assert asyncio.get_running_loop().time() - started < 1.0
            return change
        finally:
            subscription.close()

    future = asyncio.run_coroutine_threadsafe(wait_for_change(), mailserver.loop)
    change = future.result(timeout=60)
    assert change.user_id == alice.id
