"""One delivery attempt: claim a queued row, deliver it (into our store, or over SMTP to the
destination's MX or the smart host), then record what happened and send the DSNs owed.

The claim is a conditional UPDATE (queued and due -> sending, with a token and a lease),
so two workers never deliver one message; the result is written only under that token.
"""

from __future__ import annotations

import logging
import random
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.accounts.services import is_local_domain
from apps.mailauth.dns import Resolver, resolver_from_settings
from apps.mailstore.blobs import blob_store
from apps.relay import dsn, keys, local, results, routing, services
from apps.relay.client import Envelope, Profile, Session, SessionError, open_session
from apps.relay.models import QueuedMessage
from apps.relay.pool import Busy, Pool, shared_pool
from apps.relay.results import RcptResult
from apps.relay.routing import Hop, NoRoute
from apps.relay.schedule import PENDING, Plan, Timing, plan

log = logging.getLogger(__name__)
State = QueuedMessage.State

MAX_RCPTS_PER_TRANSACTION = 100  # RFC 5321 §4.5.3.1.8: servers must take at least 100
# Retries sooner than this get their own Celery task with a countdown; later ones wait for
# the sweep (a Redis broker hands out an unacked countdown task again after an hour).
COUNTDOWN_LIMIT = 600
SLOT_WAIT = 60  # seconds to wait for a free connection slot to the destination
CLOCK_SKEW = timedelta(seconds=1)  # a task may start a moment before its row is due
FOLLOW_LIMIT = 50  # rows one task may attempt for its domain before it lets others run
FOLLOW_SECONDS = 30
FOLLOW_SPREAD = 8


@dataclass(frozen=True)
class Route:
    hops: list[Hop]
    profile: Profile
    destination: str  # what the per-destination limit counts: the domain or "smarthost"


def run(
    queued_id: int,
    *,
    resolver: Resolver | None = None,
    pool: Pool | None = None,
    clock: Callable[[], datetime] = timezone.now,
) -> int:
    """What one Celery task does: attempt this row, then other due rows for the same domain
    while its server takes mail, over the same connection. Returns the attempts made.

    Following on keeps a busy destination's connection warm and makes delivery as fast as
    the peer, not as fast as the broker hands out tasks; claims keep it exactly-once.
    """
    domain = QueuedMessage.objects.filter(pk=queued_id).values_list("domain", flat=True).first()
    if domain is None:
        return 0
    resolver = resolver or resolver_from_settings(settings.DNS_SERVERS)
    pool = pool or shared_pool()
    made = 0
    candidate: int | None = queued_id
    deadline = time.monotonic() + FOLLOW_SECONDS
    for _ in range(FOLLOW_LIMIT):
        if candidate is None:
            break
        state = attempt(candidate, resolver=resolver, pool=pool, clock=clock)
        made += bool(state)
        if state == State.QUEUED or time.monotonic() > deadline:
            break  # the destination is not taking mail now, or others deserve a turn
        candidate = next_due(domain, clock())
    return made


def next_due(domain: str, now: datetime) -> int | None:
    """A due row for `domain`, picked among the oldest few so that threads following the
    same domain seldom reach for the same one."""
    ids = list(
        QueuedMessage.objects.filter(domain=domain, state=State.QUEUED, next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:FOLLOW_SPREAD]
    )
    return random.choice(ids) if ids else None


def attempt(
    queued_id: int,
    *,
    resolver: Resolver | None = None,
    pool: Pool | None = None,
    clock: Callable[[], datetime] = timezone.now,
) -> str:
    """Attempt one queued row; returns its new state, or "" when it was not ours to try
    (another worker has it, it is held, done, or not due yet)."""
    row = claim(queued_id, clock())
    if row is None:
        return ""
    pending = [r for r in row.recipients if r.get("status", PENDING) == PENDING]
    try:
        if is_local_domain(row.domain):
            with transaction.atomic():  # filed and recorded together, or neither
                return finish(row, local.deliver(row, pending), clock())
        outcome = deliver_remote(
            row,
            pending,
            resolver or resolver_from_settings(settings.DNS_SERVERS),
            pool or shared_pool(),
        )
    except Exception as exc:
        log.exception("relay: attempt of #%s failed", row.pk)
        failure = results.temporary(
            results.OTHER_TEMPORARY, f"internal error ({type(exc).__name__})"
        )
        outcome = {r["address"]: failure for r in pending}
    return finish(row, outcome, clock())


def claim(queued_id: int, now: datetime) -> QueuedMessage | None:
    """Take the row for this worker if it is queued and due; None if someone else has it."""
    token = secrets.token_hex(16)
    claimed = QueuedMessage.objects.filter(
        pk=queued_id, state=State.QUEUED, next_attempt_at__lte=now + CLOCK_SKEW
    ).update(
        state=State.SENDING,
        claim=token,
        lease_until=now + timedelta(seconds=settings.RELAY_LEASE_SECONDS),
        attempts=F("attempts") + 1,
    )
    return QueuedMessage.objects.get(pk=queued_id) if claimed else None


# --- remote delivery ----------------------------------------------------------------------


def deliver_remote(
    row: QueuedMessage, pending: Sequence[dict], resolver: Resolver, pool: Pool
) -> dict[str, RcptResult]:
    data = sign(row, blob_store().read(row.blob_key))
    envelope = Envelope(row.mail_from, pending, row.ret, row.envid, row.smtputf8)
    try:
        route = find_route(row.domain, resolver)
    except NoRoute as exc:
        return {r["address"]: exc.result for r in pending}
    try:
        with pool.slot(route.destination, SLOT_WAIT):
            return send_along(route, envelope, data, pool)
    except Busy:
        busy = results.temporary("4.4.5", f"too many connections to {route.destination} already")
        return {r["address"]: busy for r in pending}  # RFC 3463 §3.5: mail system congestion


def sign(row: QueuedMessage, raw: bytes) -> bytes:
    """DKIM-sign mail our users submitted, with the keys of its From domain when it has any."""
    if row.sender_id is None:
        return raw  # forwarded mail is not ours to vouch for
    domain = keys.author_domain(raw)
    return keys.sign(raw, domain) if domain else raw


def find_route(domain: str, resolver: Resolver) -> Route:
    profile = Profile(
        helo=settings.MAILHOST_HOSTNAME,
        tls_policy=settings.RELAY_TLS_POLICY,
        ca_file=settings.RELAY_CA_FILE,
        timeout=settings.RELAY_TIMEOUT,
        connect_timeout=settings.RELAY_CONNECT_TIMEOUT,
    )
    if settings.RELAY_SMARTHOST:
        host, port = settings.RELAY_SMARTHOST
        profile = replace(
            profile,
            tls_policy="verify",  # credentials never go out in clear or to an impostor
            implicit_tls=settings.RELAY_SMARTHOST_TLS == "tls",
            user=settings.RELAY_SMARTHOST_USER,
            password=settings.RELAY_SMARTHOST_PASSWORD,
        )
        return Route(routing.smarthost_route(host, port, resolver), profile, "smarthost")
    return Route(routing.find_route(domain, resolver, settings.RELAY_PORT), profile, domain)


def send_along(route: Route, envelope: Envelope, data: bytes, pool: Pool) -> dict[str, RcptResult]:
    """Try each host (and each of its addresses) in turn until one takes the transaction."""
    last = results.temporary(results.NETWORK_TEMPORARY, "no server to try")
    profile_key = f"{route.profile.tls_policy}:{route.profile.implicit_tls}:{route.profile.user}"
    for hop in route.hops:
        for address in hop.addresses:
            key = (hop.host, address, hop.port, profile_key)
            try:
                session = pool.take(key) or open_session(hop, address, route.profile)
            except SessionError as exc:
                log.info("relay: %s [%s]: %s", hop.host, address, exc)
                last = exc.result
                continue
            outcome = transactions(session, envelope, data)
            pool.give(key, session)
            return outcome
    return {r["address"]: last for r in envelope.recipients}


def transactions(session: Session, envelope: Envelope, data: bytes) -> dict[str, RcptResult]:
    """All the recipients over one connection, in transactions of at most 100."""
    outcome: dict[str, RcptResult] = {}
    recipients = list(envelope.recipients)
    for start in range(0, len(recipients), MAX_RCPTS_PER_TRANSACTION):
        if session.broken:
            break
        chunk = recipients[start : start + MAX_RCPTS_PER_TRANSACTION]
        outcome.update(session.send(replace(envelope, recipients=chunk), data))
    lost = results.temporary(results.NETWORK_TEMPORARY, "connection lost", session.hop.host)
    return {r["address"]: outcome.get(r["address"], lost) for r in recipients}


# --- recording the outcome ----------------------------------------------------------------


def finish(row: QueuedMessage, outcome: dict[str, RcptResult], now: datetime) -> str:
    """Store the attempt's outcome under our claim, send the DSNs owed, schedule the next
    attempt. Returns the new state ("" if the claim was lost meanwhile)."""
    timing = Timing.from_settings()
    decided = plan(
        row.recipients,
        outcome,
        created_at=row.created_at,
        attempts=row.attempts,
        delay_warned=row.delay_warned,
        now=now,
        timing=timing,
    )
    countdown = _countdown(decided, now)
    with transaction.atomic():
        updated = QueuedMessage.objects.filter(
            pk=row.pk, state=State.SENDING, claim=row.claim
        ).update(
            state=decided.state,
            recipients=decided.recipients,
            next_attempt_at=decided.next_attempt_at or now,
            last_error=decided.last_error,
            delay_warned=decided.delay_warned,
            claim="",
            lease_until=None,
            dispatched_at=decided.next_attempt_at if countdown is not None else row.dispatched_at,
        )
        if not updated:
            log.warning("relay: #%s was taken from this worker; its outcome is dropped", row.pk)
            return ""
        _notify(row, decided, now, timing.expires_at(row.created_at))
        if countdown is not None:
            transaction.on_commit(lambda: services.dispatch([row.pk], countdown=countdown))
    _log(row, outcome, decided)
    return decided.state


def _countdown(decided: Plan, now: datetime) -> float | None:
    if decided.state != State.QUEUED or decided.next_attempt_at is None:
        return None
    seconds = (decided.next_attempt_at - now).total_seconds()
    return max(seconds, 0.0) if seconds <= COUNTDOWN_LIMIT else None


def _notify(row: QueuedMessage, decided: Plan, now: datetime, until: datetime) -> None:
    notices = [
        ("failed", decided.failed),
        ("delayed", decided.delayed),
        ("delivered", decided.delivered),
        ("relayed", decided.relayed),
    ]
    for action, recipients in notices:
        if not recipients:
            continue
        try:
            with transaction.atomic():  # a failed notice must not undo the delivery record
                dsn.send(row, action, recipients, now=now, retry_until=until)
        except Exception:
            log.exception("relay: could not send the %s DSN for #%s", action, row.pk)


def _log(row: QueuedMessage, outcome: dict[str, RcptResult], decided: Plan) -> None:
    for address, result in outcome.items():
        log.info(
            "relay: #%s to=<%s> %s status=%s (%s) remote=%s",
            row.pk,
            address,
            result.kind,
            result.status,
            result.diagnostic,
            result.remote_mta or "-",
        )
    if decided.state == State.QUEUED:
        log.info("relay: #%s next attempt at %s", row.pk, decided.next_attempt_at)
