"""The maildrop lock: which POP3 session holds a user's INBOX (RFC 1939 §4, §8).

A database row, so it holds across processes and nodes sharing one database.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class MaildropLock(models.Model):
    """One row per locked maildrop; the primary key makes a second insert fail.

    The holder refreshes `refreshed_at` while its session lives; a row left stale by a
    crashed node may be taken over (apps.pop3.locks).
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True
    )
    holder = models.CharField(max_length=100)
    refreshed_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.user_id} held by {self.holder}"
