"""DKIM keys of our domains: made when a domain is created, rotated with a new selector,
published as TXT records, and used to sign outgoing mail with RSA and Ed25519 (RFC 6376,
RFC 8463)."""

from __future__ import annotations

import email.utils
import logging
import threading
import time
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from apps.accounts.addresses import split_address
from apps.accounts.models import Domain
from apps.mailauth import dkim
from apps.relay.models import DKIMKey

log = logging.getLogger(__name__)

RSA_BITS = 2048  # RFC 8301 §3.2: signers must use at least 1024 bits, and should use 2048
TXT_STRING_LIMIT = 255  # RFC 1035 §3.3.14: a longer TXT value is split into strings
# Parsed signing keys are kept this long per process: other processes see a rotation
# within this time (the old key stays published, so what it signed meanwhile verifies).
KEY_CACHE_SECONDS = 60
SELECTOR_SUFFIX = {DKIMKey.Algorithm.RSA: "rsa", DKIMKey.Algorithm.ED25519: "ed25519"}


_key_cache: dict[str, tuple[float, list[dkim.SigningKey]]] = {}
_cache_lock = threading.Lock()


class KeyChangeError(Exception):
    """A key change the admin asked for cannot be made; the message says why."""


@dataclass(frozen=True)
class DNSRecord:
    """A TXT record an admin publishes: name, value, and whether the key still signs."""

    name: str
    value: str
    selector: str
    algorithm: str
    active: bool

    def zone_line(self) -> str:
        """The record as a zone-file line, the value split in 255-octet strings."""
        chunks = [
            self.value[i : i + TXT_STRING_LIMIT]
            for i in range(0, len(self.value), TXT_STRING_LIMIT)
        ]
        quoted = " ".join(f'"{chunk}"' for chunk in chunks)
        return f"{self.name}. IN TXT ( {quoted} )"


def _generate(algorithm: str) -> tuple[str, str]:
    if algorithm == DKIMKey.Algorithm.RSA:
        return dkim.generate_rsa_key(RSA_BITS)
    return dkim.generate_ed25519_key()


def _free_stamp(domain: Domain) -> str:
    """A date stamp no selector of the domain uses yet: 20261130, then 20261130b, ..."""
    taken = set(DKIMKey.objects.filter(domain=domain).values_list("selector", flat=True))
    base = timezone.now().strftime("%Y%m%d")
    for suffix in ["", *"bcdefghijklmnopqrstuvwxyz"]:
        stamp = base + suffix
        if not any(s.startswith(stamp + "-") for s in taken):
            return stamp
    raise KeyChangeError(f"too many rotations for {domain.name} today")


@transaction.atomic
def create_keys(domain: Domain) -> list[DKIMKey]:
    """A new active RSA and Ed25519 key for `domain`; earlier keys stop signing but stay
    published until removed."""
    stamp = _free_stamp(domain)
    DKIMKey.objects.filter(domain=domain, active=True).update(active=False)
    created = []
    for algorithm, suffix in SELECTOR_SUFFIX.items():
        private_pem, record = _generate(algorithm)
        created.append(
            DKIMKey.objects.create(
                domain=domain,
                selector=f"{stamp}-{suffix}",
                algorithm=algorithm,
                private_key=private_pem,
                public_record=record,
            )
        )
    log.info("DKIM keys for %s: %s", domain.name, ", ".join(k.selector for k in created))
    transaction.on_commit(lambda: forget_keys(domain.name))
    forget_keys(domain.name)
    return created


def ensure_keys(domain: Domain) -> None:
    """Keys for a domain that has none (a new domain, or one made before the relay)."""
    if not DKIMKey.objects.filter(domain=domain).exists():
        create_keys(domain)


def rotate(domain_name: str) -> list[DKIMKey]:
    return create_keys(Domain.objects.get(name=domain_name.lower()))


def remove(domain_name: str, selector: str) -> None:
    """Forget a retired key; the active ones cannot be removed (rotate first)."""
    key = DKIMKey.objects.filter(domain__name=domain_name.lower(), selector=selector).first()
    if key is None:
        raise KeyChangeError(f"no selector {selector} for {domain_name}")
    if key.active:
        raise KeyChangeError(f"{selector} still signs mail: rotate before removing it")
    key.delete()
    forget_keys(domain_name.lower())


def dns_records(domain_name: str) -> list[DNSRecord]:
    """Every key of the domain as the TXT record to publish (RFC 6376 §3.6.2.1)."""
    keys = DKIMKey.objects.filter(domain__name=domain_name.lower())
    return [
        DNSRecord(
            name=f"{key.selector}._domainkey.{domain_name.lower()}",
            value=key.public_record,
            selector=key.selector,
            algorithm=key.algorithm,
            active=key.active,
        )
        for key in keys
    ]


# --- signing ------------------------------------------------------------------------------


def author_domain(raw: bytes) -> str:
    """The domain of the single From address (RFC 5322 §3.6.2), or "" when unclear."""
    head = raw.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    values = []
    for line in head.replace("\r\n\t", " ").replace("\r\n ", " ").split("\r\n"):
        name, sep, value = line.partition(":")
        if sep and name.strip().lower() == "from":
            values.append(value)
    addresses = email.utils.getaddresses(values)
    if len(addresses) != 1:
        return ""
    return split_address(addresses[0][1])[1]


def signing_keys(domain: str) -> list[dkim.SigningKey]:
    """The active keys of `domain`, parsed; kept for KEY_CACHE_SECONDS, so a relay signing
    a stream of messages reads and parses them once (a rotation here is seen at once)."""
    now = time.monotonic()
    with _cache_lock:
        cached = _key_cache.get(domain)
        if cached is not None and cached[0] > now:
            return cached[1]
    loaded = []
    for key in DKIMKey.objects.filter(domain__name=domain, active=True).order_by("algorithm"):
        try:
            loaded.append(dkim.signing_key(domain, key.selector, key.private_key))
        except dkim.DKIMSignError:
            log.exception("DKIM key %s of %s cannot sign", key.selector, domain)
    with _cache_lock:
        _key_cache[domain] = (now + KEY_CACHE_SECONDS, loaded)
    return loaded


def forget_keys(domain: str) -> None:
    """Drop this process's parsed keys of `domain` (after a rotation or removal)."""
    with _cache_lock:
        _key_cache.pop(domain, None)


def sign(raw: bytes, domain: str) -> bytes:
    """`raw` with one DKIM-Signature per active key of `domain` (RSA and Ed25519) on top;
    unchanged when the domain has no keys or the message cannot be signed."""
    keys = signing_keys(domain)
    if not keys:
        return raw
    try:
        return dkim.sign_with(raw, keys) + raw
    except dkim.DKIMSignError:
        log.exception("DKIM signing for %s failed", domain)
        return raw
