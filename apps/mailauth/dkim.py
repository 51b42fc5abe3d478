"""DKIM (RFC 6376): verify every signature of a message, sign outgoing mail, make keys.

Verifying is dkimpy's, key lookups going through our `Resolver`. Signing uses dkimpy's
parsing and canonicalization and computes the signatures with `cryptography`. Keys are
PKCS#8 PEM for both RSA-SHA256 and Ed25519-SHA256 (RFC 8463); the signing algorithm
follows from the key.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import dkim
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from dkim.canonicalization import CanonicalizationPolicy
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
SIGNATURE_NAME = b"DKIM-Signature"
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


@dataclass(frozen=True)
class SigningKey:
    """A private key of one of our selectors, parsed and checked once, ready to sign."""

    domain: str
    selector: str
    algorithm: str  # the a= value: rsa-sha256 or ed25519-sha256 (RFC 8463 §3)
    key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey = field(repr=False)

    def signature(self, digest: bytes) -> bytes:
        """The b= octets for the SHA-256 `digest` of the signed header fields."""
        if isinstance(self.key, rsa.RSAPrivateKey):
            # RFC 6376 §3.3.1: RSASSA-PKCS1-v1_5 over SHA-256 (OpenSSL, not pure Python).
            return self.key.sign(digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))
        return self.key.sign(digest)  # RFC 8463 §3: Ed25519 signs the SHA-256 hash itself


@functools.lru_cache(maxsize=64)
def _private_key(private_key_pem: str | bytes) -> rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey:
    """The key in a PEM. Cached: loading an RSA key checks it, which costs more than
    signing with it, and a relay signs every message with the same few keys."""
    data = private_key_pem.encode() if isinstance(private_key_pem, str) else private_key_pem
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise DKIMSignError(f"unreadable private key: {exc}") from exc
    if not isinstance(key, (rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey)):
        raise DKIMSignError(f"unsupported key type {type(key).__name__}: use RSA or Ed25519")
    return key


def signing_key(domain: str, selector: str, private_key_pem: str | bytes) -> SigningKey:
    """A `SigningKey` from a PKCS#8 (or PKCS#1) PEM; the algorithm follows from the key."""
    key = _private_key(private_key_pem)
    algorithm = "rsa-sha256" if isinstance(key, rsa.RSAPrivateKey) else "ed25519-sha256"
    return SigningKey(domain.lower(), selector, algorithm, key)


def _signed_fields(
    parsed: list[tuple[bytes, bytes]], headers: Sequence[str] | None
) -> tuple[bytes, ...]:
    """The h= list: by default the fields of RFC 6376 §5.4.1 present in the message, with
    From listed once more than it occurs so that none can be added (§8.15)."""
    if headers is None:
        wanted = set(dkim.DKIM.SHOULD) | set(dkim.DKIM.FROZEN)
        present = [name.lower() for name, _ in parsed if name.lower() in wanted]
        chosen = present + [name for name in present if name in dkim.DKIM.FROZEN]
    else:
        chosen = [h.lower().encode() for h in headers]
    if b"from" not in chosen:
        raise DKIMSignError("The From header field MUST be signed")  # RFC 6376 §5.4
    refused = set(chosen) & set(dkim.DKIM.SHOULD_NOT)
    if refused:
        raise DKIMSignError(f"{sorted(refused)[0].decode()} SHOULD NOT be signed")
    return tuple(chosen)


def _tag_list(fields: Sequence[tuple[bytes, bytes]]) -> bytes:
    return b"; ".join(b"=".join(field) for field in fields)


def _signature_field(
    key: SigningKey,
    policy: CanonicalizationPolicy,
    canonical_headers: list[tuple[bytes, bytes]],
    signed: tuple[bytes, ...],
    body_hash: bytes,
    timestamp: int,
) -> bytes:
    """One DKIM-Signature field, laid out and folded as dkimpy lays it out (RFC 6376 §3.5)."""
    domain = key.domain.encode()
    fields = [
        (b"v", b"1"),
        (b"a", key.algorithm.encode()),
        (b"c", policy.to_c_value()),
        (b"d", domain),
        (b"i", b"@" + domain),
        (b"q", b"dns/txt"),
        (b"s", key.selector.encode()),
        (b"t", str(timestamp).encode()),
        (b"h", b" : ".join(signed)),
        (b"bh", body_hash),
        # A placeholder as long as a b= value, so folding puts b= on lines of its own and
        # the fields hashed (with b= empty, §3.7) fold the same as the ones sent.
        (b"b", b"0" * 60),
    ]
    name_length = len(SIGNATURE_NAME)
    unsigned = dkim.RE_BTAG.sub(b"\\1", dkim.fold(_tag_list(fields), namelen=name_length))
    hasher = hashlib.sha256()
    dkim.hash_headers(
        hasher, policy, canonical_headers, signed, (SIGNATURE_NAME, b" " + unsigned), None
    )
    fields[-1] = (b"b", base64.b64encode(key.signature(hasher.digest())))
    value = dkim.fold(_tag_list(fields) + b"\r\n", namelen=name_length)
    return SIGNATURE_NAME + b": " + value


def sign_with(
    message: bytes,
    keys: Sequence[SigningKey],
    *,
    canonicalization: tuple[str, str] = ("relaxed", "relaxed"),
    headers: Sequence[str] | None = None,
    now: float | None = None,
) -> bytes:
    """The DKIM-Signature fields (each folded, ending in CRLF), one per key in order, to
    prepend to `message`.

    dkimpy parses and canonicalizes (RFC 6376 §3.4), once for every key; the signatures
    themselves are OpenSSL's through `cryptography`, some 25 times faster for RSA than
    dkimpy's pure-Python arithmetic.
    """
    try:
        parsed, body = dkim.rfc822_parse(message)
        policy = CanonicalizationPolicy.from_c_value(
            f"{canonicalization[0]}/{canonicalization[1]}".encode()
        )
    except dkim.DKIMException as exc:
        raise DKIMSignError(str(exc)) from exc
    signed = _signed_fields(parsed, headers)
    body_hash = base64.b64encode(hashlib.sha256(policy.canonicalize_body(body)).digest())
    canonical_headers = policy.canonicalize_headers(parsed)
    timestamp = int(time.time() if now is None else now)
    return b"".join(
        _signature_field(key, policy, canonical_headers, signed, body_hash, timestamp)
        for key in keys
    )


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
    key = signing_key(domain, selector, private_key_pem)
    return sign_with(message, [key], canonicalization=canonicalization, headers=headers)


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
