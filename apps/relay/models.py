"""The outbound queue: the truth about every message on its way to another server."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class QueuedMessage(models.Model):
    """One message for one destination domain, with every recipient there.

    Celery runs attempts; a periodic sweep runs whatever is due, so a lost broker
    message delays mail but never loses it.
    """

    class State(models.TextChoices):
        QUEUED = "queued"
        SENDING = "sending"  # claimed by a worker (conditional UPDATE)
        HELD = "held"
        DELIVERED = "delivered"
        FAILED = "failed"

    blob_key = models.CharField(max_length=64)
    size = models.BigIntegerField()
    mail_from = models.CharField(max_length=320, blank=True, default="")
    sender = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    domain = models.CharField(max_length=253)
    # [{"address": ..., "notify": [...], "orcpt": ..., "status": ..., "reply": ...}]
    recipients = models.JSONField()
    envid = models.CharField(max_length=100, blank=True, default="")
    ret = models.CharField(max_length=4, blank=True, default="")
    smtputf8 = models.BooleanField(default=False)
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    attempts = models.IntegerField(default=0)
    next_attempt_at = models.DateTimeField(db_index=True)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    delay_warned = models.BooleanField(default=False)

    class Meta:
        indexes = [models.Index(fields=["state", "next_attempt_at"], name="relay_due")]
