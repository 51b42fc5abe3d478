"""Queued mail for a domain that is ours goes straight into the store, never over the network."""

from __future__ import annotations

from collections.abc import Sequence

from apps.accounts import services as accounts
from apps.mailstore import services as store
from apps.relay import results
from apps.relay.models import QueuedMessage
from apps.relay.results import Kind, RcptResult


def deliver(row: QueuedMessage, recipients: Sequence[dict]) -> dict[str, RcptResult]:
    """File the message for every recipient who exists here; unknown ones fail (5.1.1).
    Aliases pointing elsewhere put those addresses back on the queue."""
    outcome: dict[str, RcptResult] = {}
    user_ids: list[int] = []
    forwards: list[dict] = []
    for recipient in recipients:
        found = accounts.resolve(recipient["address"])
        if not found:
            outcome[recipient["address"]] = results.permanent(
                results.BAD_MAILBOX, f"no mailbox here for {recipient['address']}"
            )
            continue
        user_ids += [u for u in found.user_ids if u not in user_ids]
        forwards += [{**recipient, "address": a} for a in found.external]
        outcome[recipient["address"]] = RcptResult(Kind.DELIVERED, "2.0.0", "delivered here")
    if user_ids:
        # Like the inbound pipeline: mail already accepted is filed, even past a quota.
        message = store.NewMessage.from_blob(row.blob_key, row.size)
        store.deliver(message, user_ids, enforce_quota=False)
    if forwards:
        from apps.relay import services

        services.enqueue(
            blob_key=row.blob_key,
            size=row.size,
            mail_from=row.mail_from,
            recipients=forwards,
            sender_id=row.sender_id,
            envid=row.envid,
            ret=row.ret,
            smtputf8=row.smtputf8,
        )
    return outcome
