"""The one row through which the nodes of an installation take turns at ordering
certificates, and where the retry schedule after a failed order is kept."""

from __future__ import annotations

from django.db import models


class CertificateOrderState(models.Model):
    """A lease plus a backoff: a node orders only after claiming the lease with a
    conditional UPDATE (apps/mailserver/renewal.py), so two nodes never order at once."""

    name = models.CharField(primary_key=True, max_length=64)
    holder = models.CharField(max_length=200, blank=True)
    # A holder that died frees the lease when this passes.
    lease_until = models.DateTimeField(null=True, blank=True)
    failures = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"{self.name}: {self.failures} failures, next {self.next_attempt_at}"
