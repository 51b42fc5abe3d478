"""Take, keep and give back the maildrop lock (RFC 1939 §8: exclusive access).

Each function is one transaction with a conditional write, so two sessions racing for
one maildrop, on one node or several, cannot both win. A lock not refreshed for
STALE_AFTER belongs to a session that died with its node and may be taken over.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.pop3.models import MaildropLock

# A live session refreshes every REFRESH_EVERY; missing several refreshes in a row means
# its process is gone. Node clocks are assumed to agree to well within the difference.
REFRESH_EVERY = timedelta(seconds=30)
STALE_AFTER = timedelta(seconds=120)


def new_holder() -> str:
    """A name for one session, unique across nodes; it shows up in the lock row."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:16]}"


def acquire(user_id: int, holder: str, now: datetime | None = None) -> bool:
    """Take the user's maildrop lock: a fresh insert, or a takeover of a stale row."""
    now = now or timezone.now()
    with transaction.atomic():
        taken = MaildropLock.objects.filter(
            user_id=user_id, refreshed_at__lt=now - STALE_AFTER
        ).update(holder=holder, refreshed_at=now)
        if taken:
            return True
        try:
            with transaction.atomic():
                MaildropLock.objects.create(user_id=user_id, holder=holder, refreshed_at=now)
        except IntegrityError:
            return False
    return True


def refresh(user_id: int, holder: str, now: datetime | None = None) -> bool:
    """Keep the lock alive; False when this holder no longer has it."""
    now = now or timezone.now()
    with transaction.atomic():
        return bool(
            MaildropLock.objects.filter(user_id=user_id, holder=holder).update(refreshed_at=now)
        )


def release(user_id: int, holder: str) -> None:
    """Give the lock back; a lock someone else has taken over stays theirs."""
    with transaction.atomic():
        MaildropLock.objects.filter(user_id=user_id, holder=holder).delete()
