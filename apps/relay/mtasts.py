"""MTA-STS (RFC 8461) for outbound mail: find a destination's policy (the `_mta-sts` TXT
record, then the policy file over HTTPS), keep it in the database for its max_age, and
say which MX hosts it allows. And our own policy, for our domains to publish.

Parsing and matching are pure functions; `lookup` does the network and the cache.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import re
import socket
import ssl
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings

from apps.mailauth.dns import DNSError, Resolver
from apps.relay.client import tls_context
from apps.relay.models import STSPolicy

log = logging.getLogger(__name__)

VERSION = "STSv1"  # RFC 8461 §3.1 (TXT) and §3.2 (policy)
MODES = ("enforce", "testing", "none")  # RFC 8461 §5
MAX_AGE_LIMIT = 31557600  # RFC 8461 §3.2: max_age is at most a year
POLICY_PATH = "/.well-known/mta-sts.txt"  # RFC 8461 §3.3
MAX_POLICY_SIZE = 64 * 1024  # RFC 8461 §3.3: senders may limit the body to 64 KiB
_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")  # RFC 8461 §3.1: sts-id-value

# RFC 8460 §4.3 result types for what can go wrong before or during TLS.
FETCH_ERROR = "sts-policy-fetch-error"
POLICY_INVALID = "sts-policy-invalid"
WEBPKI_INVALID = "sts-webpki-invalid"
HOST_MISMATCH = "certificate-host-mismatch"
EXPIRED = "certificate-expired"
NOT_TRUSTED = "certificate-not-trusted"
NO_STARTTLS = "starttls-not-supported"
VALIDATION_FAILURE = "validation-failure"


class PolicyError(Exception):
    """No usable policy: `result_type` is what the TLS report calls the failure."""

    def __init__(self, result_type: str, detail: str) -> None:
        super().__init__(detail)
        self.result_type = result_type


@dataclass(frozen=True)
class Policy:
    mode: str
    mx: tuple[str, ...]
    max_age: int
    policy_id: str = ""
    text: str = ""

    def allows(self, host: str) -> bool:
        """Whether `host` may receive the domain's mail under this policy (RFC 8461 §4.1)."""
        return any(mx_matches(pattern, host) for pattern in self.mx)


@dataclass(frozen=True)
class Lookup:
    """The policy to apply (None: the domain has none we can use), and why a fetch failed."""

    policy: Policy | None
    policy_id: str = ""
    failure: str = ""  # an RFC 8460 result type
    detail: str = ""


# --- pure parts ---------------------------------------------------------------------------


def published_id(records: list[str]) -> str | None:
    """The id of the one `v=STSv1` TXT record, or None. RFC 8461 §3.1: other records are
    ignored; zero or several STS records, or a bad one, mean no MTA-STS."""
    ours = [r for r in records if r.startswith(f"v={VERSION}")]
    if len(ours) != 1:
        return None
    fields = dict(_pair(part, "=") for part in ours[0].split(";") if part.strip())
    if fields.get("v") != VERSION or not _ID.match(fields.get("id", "")):
        return None
    return fields["id"]


def _pair(text: str, separator: str) -> tuple[str, str]:
    key, _, value = text.partition(separator)
    return key.strip(), value.strip()


def parse_policy(text: str) -> Policy:
    """RFC 8461 §3.2: "key: value" lines (CRLF or LF); version, mode and max_age are
    required, mx once per pattern (required unless mode is none); unknown keys ignored."""
    fields: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.strip():
            key, value = _pair(line, ":")
            fields.setdefault(key, []).append(value)
    version, mode, max_age = (fields.get(key, [""])[0] for key in ("version", "mode", "max_age"))
    mx = tuple(p.lower().rstrip(".") for p in fields.get("mx", []))
    if version != VERSION:
        raise PolicyError(POLICY_INVALID, f"version {version!r} is not {VERSION}")
    if mode not in MODES:
        raise PolicyError(POLICY_INVALID, f"mode {mode!r} is none of {', '.join(MODES)}")
    if not max_age.isdigit() or len(max_age) > 10:
        raise PolicyError(POLICY_INVALID, f"max_age {max_age!r} is not a number of seconds")
    if not mx and mode != "none":
        raise PolicyError(POLICY_INVALID, "no mx patterns")
    return Policy(mode, mx, min(int(max_age), MAX_AGE_LIMIT), text=text)


def mx_matches(pattern: str, host: str) -> bool:
    """RFC 8461 §4.1: a pattern is a host name, or "*." and a name matching exactly one
    more label on the left; names compare without case."""
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern.startswith("*."):
        label, dot, rest = host.partition(".")
        return bool(label) and bool(dot) and rest == pattern[2:]
    return host == pattern


def result_type(problem: str) -> str:
    """The RFC 8460 §4.3 result type for why TLS with an MX host did not verify, read from
    the relay client's description of it (Python's certificate verify messages)."""
    text = problem.lower()
    if "hostname mismatch" in text or "not valid for" in text:
        return HOST_MISMATCH
    if "expired" in text:
        return EXPIRED
    if "does not offer starttls" in text or text in ("", "not offered"):
        return NO_STARTTLS
    if "self-signed" in text or "self signed" in text or "issuer" in text:
        return NOT_TRUSTED
    return VALIDATION_FAILURE


# --- fetching and caching -----------------------------------------------------------------


class _PolicyConnection(http.client.HTTPSConnection):
    """HTTPS to an address we resolved through our own resolver, while TLS checks the
    policy host's name."""

    def __init__(
        self, host: str, address: str, port: int, timeout: float, context: ssl.SSLContext
    ) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self.address = address
        self.tls = context

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self.tls.wrap_socket(sock, server_hostname=self.host)


def fetch(domain: str, resolver: Resolver) -> str:
    """The policy text from https://mta-sts.<domain>/.well-known/mta-sts.txt, or PolicyError.
    RFC 8461 §3.3: a certificate valid for that name, a 200 answer (redirects are not
    followed), and a bounded size and time."""
    host = f"mta-sts.{domain}"
    try:
        addresses = resolver.a(host)
    except DNSError as exc:
        raise PolicyError(FETCH_ERROR, f"{host}: {exc}") from None
    context = tls_context(verify=True, ca_file=settings.RELAY_CA_FILE)
    problem = f"{host}: no address"
    for address in addresses:
        try:
            return _get(host, address, context)
        except ssl.SSLCertVerificationError as exc:
            raise PolicyError(WEBPKI_INVALID, f"{host}: {exc.verify_message}") from None
        except (OSError, http.client.HTTPException) as exc:
            problem = f"{host} [{address}]: {exc or type(exc).__name__}"
    raise PolicyError(FETCH_ERROR, problem)


def _get(host: str, address: str, context: ssl.SSLContext) -> str:
    timeout = settings.MTA_STS_FETCH_TIMEOUT
    connection = _PolicyConnection(host, address, settings.MTA_STS_FETCH_PORT, timeout, context)
    try:
        connection.request("GET", POLICY_PATH, headers={"Host": host})
        response = connection.getresponse()
        if response.status != 200:
            raise PolicyError(FETCH_ERROR, f"{host}: HTTP {response.status} (not followed)")
        body = response.read(MAX_POLICY_SIZE + 1)
    finally:
        connection.close()
    if len(body) > MAX_POLICY_SIZE:
        raise PolicyError(FETCH_ERROR, f"{host}: policy larger than {MAX_POLICY_SIZE} octets")
    return body.decode("utf-8", "replace")


def _cached(domain: str, now: datetime) -> Policy | None:
    row = STSPolicy.objects.filter(domain=domain, expires_at__gt=now).first()
    if row is None:
        return None
    return Policy(row.mode, tuple(row.mx), row.max_age, row.policy_id, row.text)


def _store(domain: str, policy: Policy, now: datetime) -> None:
    STSPolicy.objects.update_or_create(
        domain=domain,
        defaults={
            "policy_id": policy.policy_id,
            "mode": policy.mode,
            "mx": list(policy.mx),
            "max_age": policy.max_age,
            "text": policy.text,
            "fetched_at": now,
            "expires_at": now + timedelta(seconds=policy.max_age),
        },
    )


def lookup(domain: str, resolver: Resolver, now: datetime) -> Lookup:
    """The policy for mail to `domain`: the cached one while its id is still published,
    a fresh one when the id changed. RFC 8461 §5.1: when the TXT lookup or the fetch
    fails, an unexpired cached policy still applies."""
    cached = _cached(domain, now)
    try:
        policy_id = published_id(resolver.txt(f"_mta-sts.{domain}"))
    except DNSError:
        policy_id = None
    if policy_id is None or (cached is not None and cached.policy_id == policy_id):
        return Lookup(cached, cached.policy_id if cached else "")
    try:
        policy = parse_policy(fetch(domain, resolver))
    except PolicyError as exc:
        log.info("relay: MTA-STS policy of %s (id %s): %s", domain, policy_id, exc)
        return Lookup(cached, policy_id, exc.result_type, str(exc))
    policy = Policy(policy.mode, policy.mx, policy.max_age, policy_id, policy.text)
    _store(domain, policy, now)
    log.info("relay: MTA-STS policy of %s (id %s): %s", domain, policy_id, policy.mode)
    return Lookup(policy, policy_id)


# --- our own policy -----------------------------------------------------------------------


def own_policy() -> str:
    """The policy our web listener serves for every domain of ours (RFC 8461 §3.2): mail
    goes to this host, under the configured mode."""
    lines = [
        f"version: {VERSION}",
        f"mode: {settings.MTA_STS_MODE}",
        f"mx: {settings.MAILHOST_HOSTNAME}",
        f"max_age: {settings.MTA_STS_MAX_AGE}",
    ]
    return "\r\n".join(lines) + "\r\n"


def own_policy_id() -> str:
    """An id that changes whenever the policy does (RFC 8461 §3.1: senders fetch the
    policy again when it changes): letters and digits from the policy's digest."""
    return hashlib.sha256(own_policy().encode()).hexdigest()[:20]


def own_record(domain: str) -> tuple[str, str]:
    """(name, TXT value) that announces our policy for `domain` (RFC 8461 §3.1)."""
    return f"_mta-sts.{domain}", f"v={VERSION}; id={own_policy_id()}"
