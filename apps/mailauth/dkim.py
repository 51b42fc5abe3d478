"""DKIM (RFC 6376): verify every signature of a message, sign outgoing mail, make keys.

Signing and verifying are dkimpy's; key lookups go through our `Resolver`. Keys are
PKCS#8 PEM for both RSA-SHA256 and Ed25519-SHA256 (RFC 8463); the signing algorithm
follows from the key.
"""

from __future__ import annotations

import base64
import functools
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from dkim.util import InvalidTagValueList, parse_tag_value

from apps.mailauth.dns import NotFound, Resolver, TempError

logger = logging.getLogger(__name__)

# RFC 6376 §6.1: verifiers may limit how many signatures they try; the rest are ignored.
MAX_SIGNATURES = 10
# RFC 8301 §3.2: verifiers must accept RSA keys from 1024 bits (and refuse smaller ones).
MIN_RSA_BITS = 1024
# RFC 8301 §3.1: signatures using SHA-1 must not be considered valid.
REFUSED_ALGORITHMS = {"rsa-sha1"}
HEADER_B_LENGTH = 8  # RFC 6008 §4: header.b carries enough of b= to tell signatures apart
# A DKIM-Signature field at the start of a header line (RFC 5322 §3.6.8; obs-optional lets
# white space come before the colon).
SIGNATURE_FIELD = re.compile(rb"^dkim-signature[ \t]*:", re.IGNORECASE | re.MULTILINE)


def _header_end(message: bytes) -> int:
    """Where the header section ends (the blank line), or the end of a message without one."""
    end = message.find(b"\r\n\r\n")
    return len(message) if end == -1 else end


@dataclass(frozen=True)
class DKIMResult:
    """The outcome of one DKIM-Signature, with RFC 8601 §2.7.1 result names."""

    result: str  # pass, fail, neutral, temperror or permerror
    domain: str  # d=
    selector: str  # s=
    algorithm: str  # a=
    identity: str  # i=, default "@" + d= (RFC 6376 §3.5)
    header_b: str  # the first characters of b= (RFC 6008)
    reason: str = ""  # why it did not pass, for a comment in the header


class DKIMSignError(Exception):
    """The key or the message cannot be signed."""


class _KeyMissing(Exception):
    """No key record at the selector: permerror (RFC 6376 §6.1.2 step 3)."""


class _KeyUnusable(Exception):
    """A key record that does not parse or is revoked: permerror (RFC 6376 §6.1.2 steps 5-7)."""


def _key_lookup(resolver: Resolver) -> Callable[..., bytes]:
    """The `dnsfunc` dkimpy calls with the selector's name.

    dkimpy turns DNS timeouts and bad keys into a bare False ("fail"); raising exceptions
    of our own makes them come out as the temperror and permerror RFC 8601 asks for.
    """

    def lookup(name: bytes, timeout: float = 5) -> bytes:
        try:
            records = resolver.txt(name.decode("utf-8"))
        except (NotFound, UnicodeDecodeError) as exc:
            logger.info("DKIM key %r: %s", name, exc)
            raise _KeyMissing("no key for signature") from exc
        # RFC 6376 §3.6.2.2: several records at one selector give undefined results.
        key = records[0].encode()
        try:
            public_key, _bits, _type, _tlsrpt = dkim.evaluate_pk(name, key)
        except (dkim.KeyFormatError, ValueError) as exc:
            logger.info("DKIM key %r: %s", name, exc)
            raise _KeyUnusable("unusable key record") from exc
        if public_key is None:
            raise _KeyUnusable("key record is not for email")
        return key

    return lookup


def _tags(value: bytes) -> dict[bytes, bytes]:
    try:
        return dict(parse_tag_value(value))
    except InvalidTagValueList:
        return {}


def _describe(value: bytes) -> DKIMResult:
    """A neutral result carrying the signature's d=, s=, a=, i= and b= (best effort)."""
    tags = _tags(value)

    def tag(name: bytes) -> str:
        return tags.get(name, b"").decode("utf-8", "replace")

    domain = tag(b"d")
    return DKIMResult(
        result="neutral",
        domain=domain.lower(),
        selector=tag(b"s"),
        algorithm=tag(b"a"),
        identity=tag(b"i") or ("@" + domain if domain else ""),
        header_b=re.sub(r"\s+", "", tag(b"b"))[:HEADER_B_LENGTH],
    )


def _outcome(verifier: dkim.DKIM, idx: int, lookup: Callable[..., bytes]) -> tuple[str, str]:
    """(result, reason) for signature number `idx`."""
    try:
        # Parses the signature and checks its tags (RFC 6376 §6.1.1).
        sig, include_headers, sigheaders = verifier.verify_headerprep(idx)
    except dkim.DKIMException as exc:
        return "neutral", f"bad signature: {exc}"  # RFC 8601 §2.7.1: syntax errors
    if sig[b"a"].decode() in REFUSED_ALGORITHMS:
        return "permerror", f"{sig[b'a'].decode()} is not accepted"
    try:
        valid = verifier.verify_sig(sig, include_headers, sigheaders[idx], lookup)
    except TempError as exc:
        logger.info("DKIM key lookup: %s", exc)
        return "temperror", "key lookup failed"
    except (_KeyMissing, _KeyUnusable) as exc:
        return "permerror", str(exc)
    except dkim.KeyFormatError as exc:  # e.g. an RSA key under MIN_RSA_BITS
        return "permerror", str(exc)
    except dkim.ValidationError as exc:  # body hash mismatch (RFC 6376 §6.1.3)
        body_hash = str(exc).startswith("body hash mismatch")
        return "fail", "body hash mismatch" if body_hash else str(exc)
    except (dkim.DKIMException, ValueError) as exc:  # e.g. an ed25519 b= of the wrong size
        return "fail", f"signature does not verify: {exc}"
    return ("pass", "") if valid else ("fail", "signature does not verify")


def verify(message: bytes, resolver: Resolver) -> list[DKIMResult]:
    """One result per DKIM-Signature field, topmost first; [] when the message has none."""
    if not SIGNATURE_FIELD.search(message, 0, _header_end(message)):
        return []  # unsigned: dkimpy would parse the whole message to find nothing
    try:
        verifier = dkim.DKIM(message, logger=logger, minkey=MIN_RSA_BITS)
    except (dkim.DKIMException, IndexError):  # header section dkimpy cannot parse
        return []
    signatures = [v for k, v in verifier.headers if k.lower() == b"dkim-signature"]
    lookup = _key_lookup(resolver)
    results = []
    for idx, value in enumerate(signatures[:MAX_SIGNATURES]):
        result, reason = _outcome(verifier, idx, lookup)
        results.append(replace(_describe(value), result=result, reason=reason))
    return results


@functools.lru_cache(maxsize=64)
def _dkimpy_key(private_key_pem: str | bytes) -> tuple[bytes, bytes]:
    """(key in the form dkimpy wants, a= value) for a PEM private key.

    Cached: loading an RSA key checks it, which costs more than signing with it, and a
    relay signs every message with the same few keys."""
    data = private_key_pem.encode() if isinstance(private_key_pem, str) else private_key_pem
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise DKIMSignError(f"unreadable private key: {exc}") from exc
    if isinstance(key, rsa.RSAPrivateKey):
        # dkimpy reads only PKCS#1 ("BEGIN RSA PRIVATE KEY") PEM.
        pkcs1 = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        return pkcs1, b"rsa-sha256"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        # dkimpy wants the raw 32-byte seed in base64 (as its dknewkey writes it).
        seed = key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        return base64.b64encode(seed), b"ed25519-sha256"
    raise DKIMSignError(f"unsupported key type {type(key).__name__}: use RSA or Ed25519")


def sign(
    message: bytes,
    *,
    domain: str,
    selector: str,
    private_key_pem: str | bytes,
    canonicalization: tuple[str, str] = ("relaxed", "relaxed"),
    headers: Sequence[str] | None = None,
) -> bytes:
    """The DKIM-Signature field (folded, ending in CRLF) to prepend to `message`.

    `headers` lists the fields to sign; by default those of RFC 6376 §5.4.1 present in
    the message, with From signed once more than it occurs so none can be added.
    """
    key, algorithm = _dkimpy_key(private_key_pem)
    signer = dkim.DKIM(message, logger=logger, signature_algorithm=algorithm)
    try:
        signature: bytes = signer.sign(
            selector.encode(),
            domain.encode(),
            key,
            canonicalize=(canonicalization[0].encode(), canonicalization[1].encode()),
            include_headers=[h.encode() for h in headers] if headers else None,
        )
    except dkim.DKIMException as exc:
        raise DKIMSignError(str(exc)) from exc
    return signature


def _pkcs8_pem(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def generate_rsa_key(bits: int = 2048) -> tuple[str, str]:
    """(private key PEM, TXT value for <selector>._domainkey.<domain>) for RSA-SHA256."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    # p= is the DER SubjectPublicKeyInfo in base64 (RFC 6376 §3.6.1), as openssl writes it.
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return _pkcs8_pem(key), f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode()}"


def generate_ed25519_key() -> tuple[str, str]:
    """(private key PEM, TXT value) for Ed25519-SHA256; p= is the raw key (RFC 8463 §4.2)."""
    key = ed25519.Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return _pkcs8_pem(key), f"v=DKIM1; k=ed25519; p={base64.b64encode(public).decode()}"
