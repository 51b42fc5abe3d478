"""Relay queue services: putting mail on the queue (the delivery worker is its own part)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from django.db import transaction
from django.utils import timezone

from apps.accounts.addresses import split_address
from apps.relay.models import QueuedMessage


def enqueue(
    *,
    blob_key: str,
    size: int,
    mail_from: str,
    recipients: Sequence[dict],
    sender_id: int | None = None,
    envid: str = "",
    ret: str = "",
    smtputf8: bool = False,
) -> list[QueuedMessage]:
    """Queue a message for remote recipients: one row per destination domain, due now."""
    by_domain: dict[str, list[dict]] = defaultdict(list)
    for rcpt in recipients:
        by_domain[split_address(rcpt["address"])[1]].append(
            {
                "address": rcpt["address"],
                "notify": rcpt.get("notify", []),
                "orcpt": rcpt.get("orcpt"),
                "status": "queued",
            }
        )
    now = timezone.now()
    with transaction.atomic():
        return [
            QueuedMessage.objects.create(
                blob_key=blob_key,
                size=size,
                mail_from=mail_from,
                sender_id=sender_id,
                domain=domain,
                recipients=rcpts,
                envid=envid,
                ret=ret,
                smtputf8=smtputf8,
                next_attempt_at=now,
            )
            for domain, rcpts in by_domain.items()
        ]
