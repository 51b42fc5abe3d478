"""One delivery attempt: claim a queued row, deliver it (into our store, or over SMTP to the
destination's MX or the smart host), then record what happened and send the DSNs owed.

The claim is a conditional UPDATE (queued and due -> sending, with a token and a lease),
so two workers never deliver one message; the result is written only under that token.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.accounts.models import Domain
from apps.accounts.services import is_local_domain
from apps.mailauth.dns import Resolver, resolver_from_settings
from apps.mailstore.blobs import blob_store
from apps.relay import concurrency, dsn, keys, local, mtasts, results, routing, services, tlsrpt
from apps.relay.client import Envelope, Profile, Session, SessionError, open_session
from apps.relay.concurrency import Busy, Limiter, shared_limiter
from apps.relay.models import QueuedMessage
from apps.relay.pool import Key, Pool, shared_pool
from apps.relay.results import Kind, RcptResult
from apps.relay.routing import Hop, NoRoute
from apps.relay.schedule import PENDING, Plan, Timing, plan

log = logging.getLogger(__name__)
State = QueuedMessage.State

MAX_RCPTS_PER_TRANSACTION = 100  # RFC 5321 §4.5.3.1.8: servers must take at least 100
# Retries sooner than this get their own Celery task with a countdown; later ones wait for
# the sweep (a Redis broker hands out an unacked countdown task again after an hour).
COUNTDOWN_LIMIT = 600
# Seconds a run waits for one of the destination's connection slots; then it leaves its
# rows to the runs that hold them (a single attempt defers its row instead).
SLOT_WAIT = 2
BUSY_RETRY = 5  # seconds until a run that found every slot held tries again
CLOCK_SKEW = timedelta(seconds=1)  # a task may start a moment before its row is due
FOLLOW_LIMIT = 200  # rows one task may attempt for its domain before it lets others run
FOLLOW_SECONDS = 30
CLAIM_TRIES = 3  # look again this often when other workers claimed the rows first
SMARTHOST = "smarthost"  # the destination of every remote row when a smart host is set
TOO_MANY_RECIPIENTS = 452  # RFC 5321 §4.5.3.1.10: the peer's limit per transaction


@dataclass(frozen=True)
class Route:
    hops: list[Hop]
    profile: Profile
    destination: str  # what the per-destination limit counts: the domain or "smarthost"
    sts: mtasts.Policy | None = None  # the destination's MTA-STS policy, when it has one


def run(
    queued_id: int,
    *,
    resolver: Resolver | None = None,
    pool: Pool | None = None,
    limiter: Limiter | None = None,
    clock: Callable[[], datetime] = timezone.now,
) -> int:
    """What one Celery task does: claim this row and other due rows for the same domain,
    a batch at a time, and send them over one connection. Returns the attempts made.

    Batches make delivery as fast as the peer rather than as fast as the broker hands out
    tasks; claims keep it exactly-once. A run first takes one of the destination's
    connection slots: when all are held, it leaves the rows to the runs holding them.
    """
    domain = QueuedMessage.objects.filter(pk=queued_id).values_list("domain", flat=True).first()
    if domain is None:
        return 0
    if is_local_domain(domain):
        return _follow(Q(domain=domain), queued_id, clock, lambda rows: _file_local(rows, clock))
    try:
        route = find_route(domain, resolver or resolver_from_settings(settings.DNS_SERVERS))
    except NoRoute as exc:
        rows = claim_batch(Q(domain=domain), queued_id, clock(), services.BATCH_SIZE)
        _finish_all(rows, exc.result, clock)
        return len(rows)
    limiter = limiter or shared_limiter()
    scope = _remote_rows() if route.destination == SMARTHOST else Q(domain=domain)
    try:
        with concurrency.slot(limiter, route.destination, SLOT_WAIT):
            carrier = Carrier(route, pool or shared_pool(), limiter)
            try:
                return _follow(scope, queued_id, clock, lambda rows: _send(rows, carrier, clock))
            finally:
                carrier.close()
    except Busy:
        # The holders may be delivering other domains (one smart host for all): look
        # again shortly rather than wait for the sweep.
        log.info("relay: every connection slot to %s is in use", route.destination)
        services.dispatch([queued_id], countdown=BUSY_RETRY)
        return 0


def _remote_rows() -> Q:
    """Rows for every domain that is not ours: what the smart host carries."""
    return ~Q(domain__in=Domain.objects.values("name"))


def _follow(
    scope: Q,
    first: int | None,
    clock: Callable[[], datetime],
    send: Callable[[list[QueuedMessage]], bool],
) -> int:
    """Claim and `send` batches of the due rows in `scope` (one domain, or all that go to
    the smart host) while the destination takes mail; hand on to a new task after
    FOLLOW_LIMIT rows or FOLLOW_SECONDS, so other destinations get a turn."""
    tried: set[int] = set()  # a row deferred here waits for its retry, not for this run
    deadline = time.monotonic() + FOLLOW_SECONDS
    while True:
        rows = claim_batch(scope, first, clock(), services.BATCH_SIZE, exclude=tried)
        first = None
        if not rows:
            return len(tried)
        reachable = send(rows)
        tried.update(row.pk for row in rows)
        if not reachable:
            return len(tried)  # the destination is not taking mail now
        if len(tried) >= FOLLOW_LIMIT or time.monotonic() > deadline:
            break
    following = claim_candidates(scope, clock(), tried)
    if following:
        services.dispatch(following[:1])
    return len(tried)


def claim_candidates(scope: Q, now: datetime, exclude: Collection[int] = ()) -> list[int]:
    """Due rows in `scope`, oldest first (a batch's worth)."""
    due = QueuedMessage.objects.filter(
        scope, state=State.QUEUED, next_attempt_at__lte=now + CLOCK_SKEW
    ).exclude(pk__in=list(exclude))
    return list(
        due.order_by("next_attempt_at", "pk").values_list("pk", flat=True)[: services.BATCH_SIZE]
    )


def claim_batch(
    scope: Q, first: int | None, now: datetime, size: int, exclude: Collection[int] = ()
) -> list[QueuedMessage]:
    """Claim up to `size` due rows in `scope` (`first` among them when it is due) with
    one conditional UPDATE; rows another worker took meanwhile are simply not ours."""
    due = QueuedMessage.objects.filter(
        scope, state=State.QUEUED, next_attempt_at__lte=now + CLOCK_SKEW
    )
    for _ in range(CLAIM_TRIES):
        ids = claim_candidates(scope, now, exclude)[:size]
        if first is not None and first not in ids:
            ids = [first, *ids[: size - 1]]
        if not ids:
            return []
        token = secrets.token_hex(16)
        claimed = due.filter(pk__in=ids).update(
            state=State.SENDING,
            claim=token,
            lease_until=now + timedelta(seconds=settings.RELAY_LEASE_SECONDS),
            attempts=F("attempts") + 1,
        )
        if claimed:
            return list(QueuedMessage.objects.filter(claim=token).order_by("next_attempt_at", "pk"))
        first = None  # another worker claimed these first: look again at what is left
    return []


def attempt_claimed(
    rows: Sequence[QueuedMessage],
    *,
    resolver: Resolver,
    pool: Pool,
    limiter: Limiter | None = None,
    clock: Callable[[], datetime] = timezone.now,
) -> None:
    """Attempt claimed rows of one domain, recording each outcome as soon as it is known."""
    if is_local_domain(rows[0].domain):
        _file_local(rows, clock)
        return
    try:
        route = find_route(rows[0].domain, resolver)
    except NoRoute as exc:
        _finish_all(rows, exc.result, clock)
        return
    limiter = limiter or shared_limiter()
    try:
        with concurrency.slot(limiter, route.destination, SLOT_WAIT):
            carrier = Carrier(route, pool, limiter)
            try:
                _send(rows, carrier, clock)
            finally:
                carrier.close()
    except Busy:
        busy = results.temporary("4.4.5", f"too many connections to {route.destination} already")
        _finish_all(rows, busy, clock)  # RFC 3463 §3.5: mail system congestion


def _finish_all(
    rows: Sequence[QueuedMessage], result: RcptResult, clock: Callable[[], datetime]
) -> None:
    for row in rows:
        finish(row, {r["address"]: result for r in _pending(row)}, clock())


def _file_local(rows: Sequence[QueuedMessage], clock: Callable[[], datetime]) -> bool:
    for row in rows:
        _attempt_local(row, clock)
    return True


def _send(rows: Sequence[QueuedMessage], carrier: Carrier, clock: Callable[[], datetime]) -> bool:
    """Each row over the carrier's connection, then every outcome recorded in one
    transaction: none is open while the network is (SQLite's write lock would stall
    SMTP), and one commit per batch rather than per message. False once no server takes
    a connection."""
    outcomes = [(row, _carry(row, carrier)) for row in rows]
    with transaction.atomic():
        for row, outcome in outcomes:
            finish(row, outcome, clock())
    return carrier.unreachable is None


def _carry(row: QueuedMessage, carrier: Carrier) -> dict[str, RcptResult]:
    """One row's outcome over the batch's connection; an error of ours defers the row."""
    pending = _pending(row)
    try:
        data = sign(row, blob_store().read(row.blob_key))
        envelope = Envelope(row.mail_from, pending, row.ret, row.envid, row.smtputf8)
        return carrier.send(envelope, data)
    except Exception as exc:
        return _internal_error(row, pending, exc)


def _pending(row: QueuedMessage) -> list[dict]:
    return [r for r in row.recipients if r.get("status", PENDING) == PENDING]


def _internal_error(row: QueuedMessage, pending: Sequence[dict], exc: Exception) -> dict:
    log.exception("relay: attempt of #%s failed", row.pk)
    failure = results.temporary(results.OTHER_TEMPORARY, f"internal error ({type(exc).__name__})")
    return {r["address"]: failure for r in pending}


def _attempt_local(row: QueuedMessage, clock: Callable[[], datetime]) -> str:
    try:
        with transaction.atomic():  # filed and recorded together, or neither
            return finish(row, local.deliver(row, _pending(row)), clock())
    except Exception as exc:
        return finish(row, _internal_error(row, _pending(row), exc), clock())


def attempt(
    queued_id: int,
    *,
    resolver: Resolver | None = None,
    pool: Pool | None = None,
    limiter: Limiter | None = None,
    clock: Callable[[], datetime] = timezone.now,
) -> str:
    """Attempt one queued row; returns its new state, or "" when it was not ours to try
    (another worker has it, it is held, done, or not due yet)."""
    row = claim(queued_id, clock())
    if row is None:
        return ""
    attempt_claimed(
        [row],
        resolver=resolver or resolver_from_settings(settings.DNS_SERVERS),
        pool=pool or shared_pool(),
        limiter=limiter,
        clock=clock,
    )
    return QueuedMessage.objects.filter(pk=row.pk).values_list("state", flat=True).get()


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
        return Route(routing.smarthost_route(host, port, resolver), profile, SMARTHOST)
    route = Route(routing.find_route(domain, resolver, settings.RELAY_PORT), profile, domain)
    return with_sts_policy(route, resolver) if settings.RELAY_MTA_STS else route


def with_sts_policy(route: Route, resolver: Resolver) -> Route:
    """The route as the destination's MTA-STS policy shapes it (RFC 8461 §5): under
    `enforce`, only the MX hosts it lists and only with a certificate that verifies;
    under `testing`, as it was, with failures counted for the TLS report."""
    domain = route.destination
    found = mtasts.lookup(domain, resolver, timezone.now())
    if found.failure:
        tlsrpt.record(domain, found.policy_id, found.failure, detail=found.detail)
    policy = found.policy
    if policy is None or policy.mode == "none":
        return route
    if policy.mode == "testing":
        return replace(route, sts=policy)
    hops = [hop for hop in route.hops if policy.allows(hop.host)]
    if not hops:
        # RFC 8461 §4.2: no MX host the policy names: the mail waits (§5.1: temporarily).
        listed = ", ".join(hop.host for hop in route.hops)
        tlsrpt.record(domain, policy.policy_id, mtasts.VALIDATION_FAILURE, mx_host=listed)
        raise NoRoute(
            results.temporary(
                results.SECURITY_TEMPORARY,
                f"MTA-STS policy of {domain} (enforce) allows none of its MX hosts ({listed})",
            )
        )
    profile = replace(route.profile, tls_policy="verify")  # RFC 8461 §4.2: valid TLS or none
    return replace(route, hops=hops, profile=profile, sts=policy)


class Carrier:
    """One route's connection for a batch: opened at the first message (or taken from
    the pool), opened again after a break, given back to the pool at the end."""

    def __init__(self, route: Route, pool: Pool, limiter: Limiter) -> None:
        self.route = route
        self.pool = pool
        self.limiter = limiter
        self.session: Session | None = None
        self.key: Key | None = None
        self.unreachable: RcptResult | None = None  # why no host took a connection

    def send(self, envelope: Envelope, data: bytes) -> dict[str, RcptResult]:
        if self.session is None and self.unreachable is None:
            self._connect()
        if self.session is None:
            assert self.unreachable is not None
            return {r["address"]: self.unreachable for r in envelope.recipients}
        outcome = transactions(self.session, envelope, data)
        self._feedback(outcome.values(), broken=self.session.broken)
        if self.session.broken or self.session.transactions >= self.pool.max_transactions:
            self.close()  # broken or worn: the next message gets a fresh connection
        return outcome

    def _feedback(self, replies: Iterable[RcptResult], broken: bool) -> None:
        """Open the destination's window when it took mail; close it when a whole
        transaction was deferred (a 4xx for all, a drop, a timeout)."""
        kinds = {reply.kind for reply in replies}
        if any(kind.done for kind in kinds):
            self.limiter.feedback(self.route.destination, success=True)
        elif broken or kinds == {Kind.TEMPORARY}:
            self.limiter.feedback(self.route.destination, success=False)

    def _connect(self) -> None:
        """Each host (and each of its addresses) in turn until one takes a connection."""
        last = results.temporary(results.NETWORK_TEMPORARY, "no server to try")
        profile = self.route.profile
        profile_key = f"{profile.tls_policy}:{profile.implicit_tls}:{profile.user}"
        for hop in self.route.hops:
            for address in hop.addresses:
                key = (hop.host, address, hop.port, profile_key)
                try:
                    self.session = self.pool.take(key) or self._open(hop, address)
                except SessionError as exc:
                    log.info("relay: %s [%s]: %s", hop.host, address, exc)
                    last = exc.result
                    continue
                self.key = key
                return
        self.unreachable = last
        self.limiter.feedback(self.route.destination, success=False)

    def _open(self, hop: Hop, address: str) -> Session:
        """A new session, counted for the TLS report when the destination has an MTA-STS
        policy (RFC 8460 §4.3: one per session, successful or not)."""
        policy = self.route.sts
        try:
            session = open_session(hop, address, self.route.profile)
        except SessionError as exc:
            if policy is None or exc.result.status != results.SECURITY_TEMPORARY:
                raise
            problem = exc.result.diagnostic
            self._count(hop, mtasts.result_type(problem), problem)
            if policy.mode != "enforce":
                raise  # our own RELAY_TLS_POLICY refused it, not the destination's policy
            why = f"MTA-STS policy of {self.route.destination} (enforce) requires a valid"
            raise SessionError(
                replace(exc.result, diagnostic=f"{why} certificate: {problem}")
            ) from None
        if policy is not None:
            self._count(hop, *_sts_outcome(policy, hop, session))
        return session

    def _count(self, hop: Hop, result_type: str, detail: str = "") -> None:
        assert self.route.sts is not None
        destination, policy_id = self.route.destination, self.route.sts.policy_id
        if result_type:
            log.info(
                "relay: MTA-STS %s for %s at %s: %s", result_type, destination, hop.host, detail
            )
        tlsrpt.record(destination, policy_id, result_type, mx_host=hop.host, detail=detail)

    def close(self) -> None:
        if self.session is not None and self.key is not None:
            self.pool.give(self.key, self.session)
        self.session = None


def _sts_outcome(policy: mtasts.Policy, hop: Hop, session: Session) -> tuple[str, str]:
    """(RFC 8460 result type, detail) of a session under a `testing` policy: what would
    have kept the mail back under `enforce` (RFC 8461 §5.2), or ("", "") when nothing."""
    if not policy.allows(hop.host):
        return mtasts.VALIDATION_FAILURE, f"{hop.host} is not among the policy's mx"
    if not session.tls.verified:
        return mtasts.result_type(session.tls.problem), session.tls.problem
    return "", ""


def transactions(session: Session, envelope: Envelope, data: bytes) -> dict[str, RcptResult]:
    """All the recipients over one connection, in transactions of at most 100; those a
    peer refused with 452 past its own limit go in the next one (RFC 5321 §4.5.3.1.10)."""
    outcome: dict[str, RcptResult] = {}
    waiting = list(envelope.recipients)
    while waiting and not session.broken:
        chunk, waiting = waiting[:MAX_RCPTS_PER_TRANSACTION], waiting[MAX_RCPTS_PER_TRANSACTION:]
        replies = session.send(replace(envelope, recipients=chunk), data)
        outcome.update(replies)
        over = [r for r in chunk if replies[r["address"]].code == TOO_MANY_RECIPIENTS]
        if len(over) < len(chunk):
            waiting = over + waiting  # the peer's limit, not a refusal: send them next
    lost = results.temporary(results.NETWORK_TEMPORARY, "connection lost", session.hop.host)
    return {r["address"]: outcome.get(r["address"], lost) for r in envelope.recipients}


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
