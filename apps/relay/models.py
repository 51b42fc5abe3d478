"""The outbound queue (the truth about every message on its way out) and DKIM signing keys."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class QueuedMessage(models.Model):
    """One message for one destination domain, with every recipient there.

    Celery runs attempts; a periodic sweep runs whatever is due, so a lost broker
    message delays mail but never loses it. A worker claims a row with a conditional
    UPDATE (state queued -> sending, with its own `claim` token and a lease), so two
    workers never deliver the same message.
    """

    class State(models.TextChoices):
        QUEUED = "queued"
        SENDING = "sending"  # claimed by a worker (conditional UPDATE)
        HELD = "held"
        DELIVERED = "delivered"
        FAILED = "failed"  # every recipient is done, and at least one failed

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
    # The worker's token while state is "sending", and when its claim lapses.
    claim = models.CharField(max_length=32, blank=True, default="")
    lease_until = models.DateTimeField(null=True, blank=True)
    # When the last Celery task for this row was due to run; the sweep sends another
    # only when that one looks lost.
    dispatched_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["state", "next_attempt_at"], name="relay_due")]

    def __str__(self) -> str:
        return f"#{self.pk} {self.mail_from or '<>'} -> {self.domain} ({self.state})"


class DKIMKey(models.Model):
    """A signing key of one of our domains, published at <selector>._domainkey.<domain>.

    Active keys sign outgoing mail (one per algorithm); a rotated key stays published,
    inactive, until an admin removes it, so mail signed with it still verifies.
    """

    class Algorithm(models.TextChoices):
        RSA = "rsa-sha256"
        ED25519 = "ed25519-sha256"  # RFC 8463

    domain = models.ForeignKey("accounts.Domain", on_delete=models.CASCADE, related_name="+")
    selector = models.CharField(max_length=63)
    algorithm = models.CharField(max_length=20, choices=Algorithm.choices)
    private_key = models.TextField()  # PKCS#8 PEM
    public_record = models.TextField()  # the TXT value to publish
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["domain_id", "-created_at", "algorithm"]
        constraints = [
            models.UniqueConstraint(fields=["domain", "selector"], name="unique_dkim_selector")
        ]

    def __str__(self) -> str:
        return f"{self.selector} ({self.algorithm})"


class STSPolicy(models.Model):
    """A destination's MTA-STS policy as last fetched (RFC 8461 §5.1: cached for max_age,
    fetched again when the id in its `_mta-sts` TXT record changes)."""

    domain = models.CharField(max_length=253, unique=True)
    policy_id = models.CharField(max_length=32)  # RFC 8461 §3.1: 1*32(ALPHA / DIGIT)
    mode = models.CharField(max_length=8)
    mx = models.JSONField()  # the mx patterns, "*.example.org" wildcards included
    max_age = models.IntegerField()
    text = models.TextField()  # the policy as served: the TLS report quotes it
    fetched_at = models.DateTimeField()
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.domain} {self.mode} (id {self.policy_id})"


class TLSResult(models.Model):
    """How many TLS sessions to one policy domain's MX hosts went well or failed, per day
    and kind of failure: what a daily TLS report (RFC 8460 §4.4) sums up."""

    domain = models.CharField(max_length=253)
    day = models.DateField()
    policy_type = models.CharField(max_length=16)  # RFC 8460 §4.3: "sts", "no-policy-found"
    policy_id = models.CharField(max_length=32, blank=True, default="")
    result_type = models.CharField(max_length=40, blank=True, default="")  # "" for success
    mx_host = models.CharField(max_length=253, blank=True, default="")
    detail = models.CharField(max_length=200, blank=True, default="")
    sessions = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["domain", "day", "policy_type", "policy_id", "result_type", "mx_host"],
                name="unique_tls_result",
            )
        ]

    def __str__(self) -> str:
        return f"{self.domain} {self.day} {self.result_type or 'success'}: {self.sessions}"
