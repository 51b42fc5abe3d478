"""Keeps the server's certificate from an ACME CA current: ordered when missing, when a name
that points here is not covered, and when a third of its lifetime is left; retried with
backoff after a failure, the old certificate staying in use meanwhile.

One node orders at a time. The turn is a row claimed with a conditional UPDATE rather than
"beat runs the task once": the start-up check of every `runmailserver` orders too, nodes
start together after an upgrade, and a file lock on a shared data dir (NFS) is not to be
trusted. The same row keeps the retry schedule, so every node honours one backoff.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import socket
from collections.abc import Callable

from django.conf import settings
from django.db import IntegrityError
from django.db.models import Q
from django.utils import timezone

from apps.accounts.models import Domain
from apps.mailauth import dns
from apps.mailserver import acme_client, certstore
from apps.mailserver.models import CertificateOrderState

log = logging.getLogger(__name__)
STATE = "acme"
# Names served for every domain: mail clients, autoconfiguration (Thunderbird's
# autoconfig.<domain>) and the MTA-STS policy host (RFC 8461 §3.3).
DOMAIN_PREFIXES = ("mail.", "autoconfig.", "mta-sts.")
RENEW_AT_FRACTION = 3  # renew when a third of the lifetime is left: 30 days of 90
ORDER_TIMEOUT = 90  # seconds for the CA to validate and issue
# Longer than one order may take, so a live holder is never overtaken; a dead one's turn
# passes after this.
LEASE = datetime.timedelta(seconds=ORDER_TIMEOUT * 3)

Clock = Callable[[], datetime.datetime]


def renew(clock: Clock = timezone.now, resolver: dns.Resolver | None = None) -> str:
    """Order a certificate when one is due; returns what happened: "off", "current",
    "waiting" (another node's turn, or backing off), "renewed" or "failed"."""
    resolver = resolver or dns.resolver_from_settings(settings.DNS_SERVERS)
    if not enabled(resolver):
        return "off"
    names = wanted_names(resolver)
    installed = certstore.load(settings.TLS_CERTS_DIR, settings.MAILHOST_HOSTNAME)
    now = clock()
    if not names or not is_due(installed, names, now):
        return "current"
    holder = f"{socket.gethostname()}:{os.getpid()}"
    if not _claim(holder, now):
        return "waiting"
    try:
        return _order(names, holder, now)
    finally:
        _release(holder)


def enabled(resolver: dns.Resolver) -> bool:
    """MAILHOST_ACME: "on", "off", or "auto": on in production when no own certificate is
    configured and the host name resolves to this machine (else the CA could not reach it)."""
    if settings.ACME in ("on", "off"):
        return settings.ACME == "on"
    if settings.PROFILE != "production" or settings.TLS_CERT_CONFIGURED:
        return False
    return points_here(settings.MAILHOST_HOSTNAME, resolver)


def wanted_names(resolver: dns.Resolver) -> list[str]:
    """The host name and each active domain's service names, those that resolve here:
    the CA validates every name of an order, and one elsewhere would fail them all."""
    candidates = [settings.MAILHOST_HOSTNAME.lower()]
    for domain in Domain.objects.filter(is_active=True).order_by("name"):
        candidates += [prefix + domain.name.lower() for prefix in DOMAIN_PREFIXES]
    names = [name for name in dict.fromkeys(candidates) if points_here(name, resolver)]
    skipped = sorted(set(candidates) - set(names))
    if skipped:
        log.debug("not in the certificate (they do not resolve here): %s", ", ".join(skipped))
    return names


def points_here(name: str, resolver: dns.Resolver) -> bool:
    """Whether `name` has an A or AAAA record, every one an address of this machine."""
    addresses = []
    for lookup in (resolver.a, resolver.aaaa):
        try:
            addresses += lookup(name)
        except dns.NotFound:
            continue
        except dns.TempError as exc:
            log.info("cannot tell whether %s points here: %s", name, exc)
            return False
    return bool(addresses) and all(_is_ours(address) for address in addresses)


def _is_ours(address: str) -> bool:
    """An address of this machine: configured as public (behind NAT), or one it can bind."""
    if address in settings.ACME_ADDRESSES:
        return True
    family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((address, 0))
        except OSError:  # EADDRNOTAVAIL: not on any interface (or one we cannot use)
            return False
    return True


def is_due(installed: certstore.Installed | None, names: list[str], now: datetime.datetime) -> bool:
    """Missing, short of a name, or into the last third of its lifetime."""
    if installed is None or not set(names) <= installed.names:
        return True
    lifetime = installed.not_after - installed.not_before
    return now >= installed.not_after - lifetime / RENEW_AT_FRACTION


def _order(names: list[str], holder: str, now: datetime.datetime) -> str:
    ca = acme_client.CA(
        directory=settings.ACME_DIRECTORY,
        email=settings.ACME_EMAIL,
        ca_bundle=settings.ACME_CA_BUNDLE,
        state_dir=settings.ACME_STATE_DIR,
    )
    method = challenge_type()
    log.info("ordering a certificate from %s for %s (%s)", ca.directory, ", ".join(names), method)
    try:
        key_pem, chain_pem = acme_client.obtain(ca, names, method, ORDER_TIMEOUT)
        folder = certstore.install(
            settings.TLS_CERTS_DIR, settings.MAILHOST_HOSTNAME, key_pem, chain_pem
        )
    except (acme_client.OrderFailed, OSError) as exc:
        retry_at = _record_failure(holder, now, str(exc))
        log.warning("certificate order failed (%s); next try at %s", exc, retry_at.isoformat())
        return "failed"
    _record_success(holder)
    log.info("installed a certificate for %s in %s", ", ".join(names), folder)
    return "renewed"


def challenge_type() -> str:
    """HTTP-01 through port 80 (RFC 8555 §8.3); where port 80 is not served and the
    TLS-ALPN-01 listener is, that (RFC 8737)."""
    if settings.LISTENERS.get("http") is None and settings.LISTENERS.get("tls_alpn"):
        return acme_client.TLS_ALPN_01
    return acme_client.HTTP_01


def _claim(holder: str, now: datetime.datetime) -> bool:
    """Take the turn to order: exactly one row changed means this node has it; none means
    another node holds the lease, or the last failure's backoff has not passed."""
    try:
        CertificateOrderState.objects.get_or_create(name=STATE)
    except IntegrityError:  # another node created the row first: as good
        pass
    free = Q(lease_until__isnull=True) | Q(lease_until__lte=now)
    due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    claimed = CertificateOrderState.objects.filter(free & due, name=STATE).update(
        holder=holder, lease_until=now + LEASE
    )
    return claimed == 1


def _release(holder: str) -> None:
    CertificateOrderState.objects.filter(name=STATE, holder=holder).update(
        holder="", lease_until=None
    )


def _record_success(holder: str) -> None:
    CertificateOrderState.objects.filter(name=STATE, holder=holder).update(
        failures=0, next_attempt_at=None, last_error=""
    )


def _record_failure(holder: str, now: datetime.datetime, error: str) -> datetime.datetime:
    """Back off: the n-th failure in a row waits the n-th of ACME_RETRY_DELAYS (the last
    repeats), so a CA that refuses is not asked again at every check."""
    state = CertificateOrderState.objects.get(name=STATE)
    delays = settings.ACME_RETRY_DELAYS
    delay = delays[min(state.failures, len(delays) - 1)]
    retry_at = now + datetime.timedelta(seconds=delay)
    CertificateOrderState.objects.filter(name=STATE, holder=holder).update(
        failures=state.failures + 1, next_attempt_at=retry_at, last_error=error[:2000]
    )
    return retry_at
