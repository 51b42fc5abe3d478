"""Decisions after an attempt (pure): what each recipient's state is now, when to try
again, when to give up, and which delivery status notifications are owed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings

from apps.relay.results import TOO_LONG, Kind, RcptResult

# Recipient states kept in QueuedMessage.recipients.
PENDING = "queued"
DELIVERED = "delivered"
FAILED = "failed"
# RFC 3461 §4.1: without NOTIFY, the MTA chooses; FAILURE,DELAY is the common choice.
DEFAULT_NOTIFY = ("FAILURE", "DELAY")


@dataclass(frozen=True)
class Timing:
    retry_delays: Sequence[int]  # seconds after attempt 1, 2, ...; the last repeats
    max_age: int  # seconds from queueing until pending recipients fail (RFC 5321 §4.5.4.1)
    delay_warning: int  # seconds from queueing until a "delayed" DSN is owed

    @classmethod
    def from_settings(cls) -> Timing:
        return cls(
            retry_delays=tuple(settings.RELAY_RETRY_DELAYS) or (300,),
            max_age=settings.RELAY_MAX_AGE,
            delay_warning=settings.RELAY_DELAY_WARNING,
        )

    def retry_delay(self, attempts: int) -> timedelta:
        """Growing delays: minutes at first, then hours (RFC 5321 §4.5.4.1)."""
        index = min(max(attempts, 1), len(self.retry_delays)) - 1
        return timedelta(seconds=self.retry_delays[index])

    def expires_at(self, created_at: datetime) -> datetime:
        return created_at + timedelta(seconds=self.max_age)


def notify_wanted(recipient: Mapping, event: str) -> bool:
    """Whether the sender asked to hear about `event` (SUCCESS, FAILURE or DELAY) for this
    recipient (RFC 3461 §4.1); NEVER means never."""
    notify = [n.upper() for n in recipient.get("notify") or []] or list(DEFAULT_NOTIFY)
    return event in notify and "NEVER" not in notify


@dataclass
class Plan:
    """What to store after an attempt, and the notifications to send."""

    recipients: list[dict]
    state: str  # a QueuedMessage.State value
    next_attempt_at: datetime | None
    last_error: str
    delay_warned: bool
    failed: list[dict] = field(default_factory=list)  # owed an "failed" DSN
    delayed: list[dict] = field(default_factory=list)  # owed a "delayed" DSN
    delivered: list[dict] = field(default_factory=list)  # owed "delivered" DSN (final here)
    relayed: list[dict] = field(default_factory=list)  # owed "relayed" DSN (RFC 3461 §4.2)


def _apply(recipient: dict, result: RcptResult) -> dict:
    updated = {
        **recipient,
        "code": result.status,
        "reply": result.diagnostic,
        "remote_mta": result.remote_mta,
    }
    if result.kind.done:
        updated["status"] = DELIVERED
        updated["how"] = str(result.kind)
    elif result.kind is Kind.PERMANENT:
        updated["status"] = FAILED
    return updated


def _expire(recipient: dict) -> dict:
    last = recipient.get("reply") or "no attempt succeeded"
    return {
        **recipient,
        "status": FAILED,
        "code": TOO_LONG,
        "reply": f"delivery time expired; last error: {last}",
    }


def plan(
    recipients: Sequence[dict],
    results: Mapping[str, RcptResult],
    *,
    created_at: datetime,
    attempts: int,
    delay_warned: bool,
    now: datetime,
    timing: Timing,
) -> Plan:
    """Fold one attempt's results into the recipients and decide what happens next."""
    updated: list[dict] = []
    out = Plan([], "", None, "", delay_warned)
    for recipient in recipients:
        result = results.get(recipient["address"])
        if recipient.get("status", PENDING) != PENDING or result is None:
            updated.append(dict(recipient))
            continue
        new = _apply(recipient, result)
        updated.append(new)
        _owe_outcome(out, new, result.kind)
    errors = [r.diagnostic for r in results.values() if not r.kind.done]
    out.last_error = errors[0] if errors else ""
    expires = timing.expires_at(created_at)
    if now >= expires:
        for index, recipient in enumerate(updated):
            if recipient.get("status", PENDING) == PENDING:
                updated[index] = _expire(recipient)
                if notify_wanted(recipient, "FAILURE"):
                    out.failed.append(updated[index])
    pending = [r for r in updated if r.get("status", PENDING) == PENDING]
    if pending and not delay_warned and now - created_at >= timedelta(seconds=timing.delay_warning):
        out.delayed = [r for r in pending if notify_wanted(r, "DELAY")]
        out.delay_warned = True
    out.recipients = updated
    out.state, out.next_attempt_at = _next_state(updated, pending, attempts, now, expires, timing)
    return out


def _owe_outcome(out: Plan, recipient: dict, kind: Kind) -> None:
    if kind is Kind.PERMANENT and notify_wanted(recipient, "FAILURE"):
        out.failed.append(recipient)
    elif kind is Kind.DELIVERED and notify_wanted(recipient, "SUCCESS"):
        out.delivered.append(recipient)
    elif kind is Kind.RELAYED and notify_wanted(recipient, "SUCCESS"):
        out.relayed.append(recipient)


def _next_state(
    recipients: list[dict],
    pending: list[dict],
    attempts: int,
    now: datetime,
    expires: datetime,
    timing: Timing,
) -> tuple[str, datetime | None]:
    if pending:
        # Never sleep past the expiry: the last attempt (and the bounce) comes on time.
        return "queued", min(now + timing.retry_delay(attempts), expires)
    if all(r["status"] == DELIVERED for r in recipients):
        return "delivered", None
    return "failed", None
