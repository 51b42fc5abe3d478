"""Change events: how IMAP IDLE, POP3 and webmail push learn that a folder changed.

An event is a hint ("user U's folder F changed"); listeners re-read the store for what
changed, so a lost or doubled event costs a query, never correctness. The store publishes
after commit. Three carriers:

- in-process: subscribers on this node's asyncio loop hear publishes from this process;
- a database poll (embedded default): folders touched in the last moments, so a change
  made by another process (the Celery worker filing mail) still arrives within a second;
- Redis pub/sub (REDIS_URL set): every node hears every node.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from mailhost.threads import in_thread

log = logging.getLogger(__name__)

REDIS_CHANNEL = "mailhost:changes"
POLL_INTERVAL = 0.25  # seconds; IDLE must see a new delivery within one second
POLL_LOOKBACK = timedelta(seconds=5)  # covers commits that land after their changed_at


@dataclass(frozen=True)
class Change:
    user_id: int
    folder_id: int


class Subscription:
    """Changes for one user, delivered on the loop that subscribed."""

    def __init__(self, hub: Hub, user_id: int) -> None:
        self.hub = hub
        self.user_id = user_id
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[Change] = asyncio.Queue()

    async def get(self) -> Change:
        return await self.queue.get()

    def pending(self) -> bool:
        return not self.queue.empty()

    def drain(self) -> list[Change]:
        changes = []
        while not self.queue.empty():
            changes.append(self.queue.get_nowait())
        return changes

    def close(self) -> None:
        self.hub.unsubscribe(self)

    def push(self, change: Change) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, change)


class Hub:
    """Fans changes out to this process's subscribers; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: dict[int, set[Subscription]] = {}

    def subscribe(self, user_id: int) -> Subscription:
        sub = Subscription(self, user_id)
        with self._lock:
            self._subscribers.setdefault(user_id, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            subs = self._subscribers.get(sub.user_id, set())
            subs.discard(sub)
            if not subs:
                self._subscribers.pop(sub.user_id, None)

    def deliver(self, change: Change) -> None:
        with self._lock:
            subs = list(self._subscribers.get(change.user_id, ()))
        for sub in subs:
            try:
                sub.push(change)
            except RuntimeError:  # the subscriber's loop has closed
                self.unsubscribe(sub)

    def has_subscribers(self) -> bool:
        return bool(self._subscribers)


hub = Hub()
_redis_client = None


def publish(change: Change) -> None:
    """Tell every listener; called by the store after its transaction commits."""
    hub.deliver(change)
    if settings.REDIS_URL:
        _publish_redis(change)


def _publish_redis(change: Change) -> None:
    global _redis_client
    try:
        if _redis_client is None:
            import redis

            _redis_client = redis.Redis.from_url(settings.REDIS_URL)
        _redis_client.publish(REDIS_CHANNEL, json.dumps([change.user_id, change.folder_id]))
    except Exception:  # a lost hint is a slower IDLE, never lost mail
        log.warning("could not publish change event to Redis", exc_info=True)
        _redis_client = None


def subscribe(user_id: int) -> Subscription:
    return hub.subscribe(user_id)


async def run_database_poller(stop: asyncio.Event) -> None:
    """Embedded mode: turn changes made by other processes into events here."""
    seen: dict[int, tuple[int, int]] | None = None  # folders in the last window
    while not stop.is_set():
        try:
            current = {
                fid: (uid, state) for fid, uid, state in await in_thread(_poll_recent_folders)
            }
            if seen is not None:  # the first poll only learns the starting point
                for folder_id, (user_id, state) in current.items():
                    if seen.get(folder_id) != state:
                        hub.deliver(Change(user_id, folder_id))
            seen = {fid: state for fid, (_, state) in current.items()}
        except Exception:
            log.warning("change poll failed", exc_info=True)
        try:
            await asyncio.wait_for(stop.wait(), POLL_INTERVAL)
        except TimeoutError:
            pass


def _poll_recent_folders() -> list[tuple[int, int, tuple[int, int]]]:
    from django.db import close_old_connections

    from apps.mailstore.models import Folder

    close_old_connections()
    since = timezone.now() - POLL_LOOKBACK
    rows = Folder.objects.filter(changed_at__gte=since).values_list(
        "id", "user_id", "uidnext", "highestmodseq"
    )
    return [(fid, uid, (nxt, hms)) for fid, uid, nxt, hms in rows]


async def run_redis_listener(stop: asyncio.Event) -> None:
    """Scaled out: hear every node's changes over Redis pub/sub."""
    import redis.asyncio as aioredis

    stopping = asyncio.ensure_future(stop.wait())
    try:
        while not stop.is_set():
            client = aioredis.Redis.from_url(settings.REDIS_URL)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(REDIS_CHANNEL)
                    await _relay_messages(pubsub, stopping)
            except Exception:
                log.warning("Redis change listener lost its connection; retrying", exc_info=True)
                await asyncio.wait({stopping}, timeout=1)
            finally:
                await client.aclose()
    finally:
        stopping.cancel()


async def _relay_messages(pubsub, stopping: asyncio.Future) -> None:
    """Deliver pub/sub messages to this node's subscribers until `stopping` completes."""
    while not stopping.done():
        getter = asyncio.ensure_future(
            pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
        )
        await asyncio.wait({getter, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not getter.done():
            getter.cancel()
            return
        message = getter.result()
        if message is not None:
            user_id, folder_id = json.loads(message["data"])
            hub.deliver(Change(user_id, folder_id))
