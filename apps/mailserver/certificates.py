"""Certificates chosen by the name the client asks for (SNI, RFC 6066 §3), on every TLS
listener and after STARTTLS, and picked up without a restart when they are renewed.

Layout, under the certificate directory (MAILHOST_TLS_CERTS_DIR, default
`<data dir>/certs`): one folder per certificate, its name free (the ACME client names
them after the first host name), holding two PEM files:

    certs/
      mail.example.org/
        fullchain.pem   the certificate first, then its intermediates
        privkey.pem     its private key (mode 0600)

A certificate serves the DNS names in its subjectAltName (`*.example.org` covers one
label). A client that asks for no name, or for one no certificate covers, gets the default
certificate (MAILHOST_TLS_CERT / MAILHOST_TLS_KEY). To replace a certificate, write new
files beside the old ones and rename them into place, key first: within RELOAD_SECONDS the
next handshake uses them. A pair that does not load is logged and the previous one kept.
"""

from __future__ import annotations

import logging
import os
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from apps.mailserver import tls

log = logging.getLogger(__name__)
CHAIN = "fullchain.pem"
KEY = "privkey.pem"
# How often a handshake may look at the files (a directory scan and two stats per
# certificate): a renewed certificate is in use this many seconds after it is written.
RELOAD_SECONDS = 5.0

Stamp = tuple[tuple[int, int, int], ...]  # (inode, size, mtime) of each file


@dataclass
class Certificate:
    """One certificate on disk, the names it serves, and a context for it per profile."""

    chain: Path
    key: Path
    stamp: Stamp
    names: frozenset[str]
    contexts: dict[str, ssl.SSLContext] = field(default_factory=dict)

    def context(self, profile: str) -> ssl.SSLContext:
        if profile not in self.contexts:
            self.contexts[profile] = tls.server_context(self.chain, self.key, profile)
        return self.contexts[profile]

    def serves(self, name: str) -> bool:
        if name in self.names:
            return True
        _, dot, parent = name.partition(".")
        return bool(dot) and f"*.{parent}" in self.names


def _stamp(*paths: Path) -> Stamp | None:
    try:
        stats = [path.stat() for path in paths]
    except OSError:
        return None
    return tuple((s.st_ino, s.st_size, s.st_mtime_ns) for s in stats)


def _load(chain: Path, key: Path, stamp: Stamp, profile: str) -> Certificate:
    """Read the names and build one context now, so a broken pair fails here."""
    leaf = x509.load_pem_x509_certificate(chain.read_bytes())
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = frozenset(name.lower() for name in san.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        names = frozenset()
    certificate = Certificate(chain, key, stamp, names)
    certificate.context(profile)
    return certificate


class CertificateStore:
    """The default certificate and the certificate directory, kept fresh; hands out one
    server context per profile whose SNI callback picks the certificate."""

    def __init__(self, cert_file: Path, key_file: Path, directory: Path) -> None:
        self.default_files = (cert_file, key_file)
        self.directory = directory
        self.fronts: dict[str, ssl.SSLContext] = {}
        self.default: Certificate | None = None
        self.named: dict[Path, Certificate] = {}
        self.checked_at = float("-inf")

    def server_context(self, profile: str) -> ssl.SSLContext:
        """The context a listener serves with. It holds the default certificate itself,
        so it works unchanged should the callback leave it in place."""
        if profile not in self.fronts:
            front = tls.server_context(*self.default_files, profile)
            front.sni_callback = self._choose
            self.fronts[profile] = front
            self.refresh(profile, force=True)
        return self.fronts[profile]

    def _choose(self, ssl_object: ssl.SSLObject, name: str | None, front: ssl.SSLContext) -> None:
        """OpenSSL's servername callback (called with None when the client sent no name).
        It must never raise: an exception here fails the handshake."""
        try:
            profile = next(p for p, context in self.fronts.items() if context is front)
            self.refresh(profile)
            certificate = self.find(name.lower().rstrip(".") if name else "")
            if certificate is not None:
                ssl_object.context = certificate.context(profile)
        except Exception:
            log.exception("could not choose a certificate for %r", name)

    def find(self, name: str) -> Certificate | None:
        """The certificate serving `name` (an exact name before a wildcard; of two, the
        one written last), else the default certificate."""
        if name:
            exact = [c for c in self.named.values() if name in c.names]
            matches = exact or [c for c in self.named.values() if c.serves(name)]
            if matches:
                return max(matches, key=lambda c: max(mtime for _, _, mtime in c.stamp))
        return self.default

    def refresh(self, profile: str, *, force: bool = False) -> None:
        """Reload what changed on disk, at most once every RELOAD_SECONDS."""
        now = time.monotonic()
        if not force and now - self.checked_at < RELOAD_SECONDS:
            return
        self.checked_at = now
        self.default = self._fresh(self.default, *self.default_files, profile)
        named: dict[Path, Certificate] = {}
        for folder in self._folders():
            found = self._fresh(self.named.get(folder), folder / CHAIN, folder / KEY, profile)
            if found is not None:
                named[folder] = found
        self.named = named

    def _folders(self) -> list[Path]:
        try:
            entries = list(os.scandir(self.directory))
        except OSError:  # no directory yet: only the default certificate
            return []
        # Dot-folders are the ACME store's own (versions behind the links, links being
        # swapped): only the named links are certificates to serve.
        return sorted(
            Path(entry.path)
            for entry in entries
            if entry.is_dir() and not entry.name.startswith(".")
        )

    def _fresh(
        self, known: Certificate | None, chain: Path, key: Path, profile: str
    ) -> Certificate | None:
        stamp = _stamp(chain, key)
        if stamp is None or (known is not None and known.stamp == stamp):
            return known
        try:
            certificate = _load(chain, key, stamp, profile)
        except (OSError, ValueError, ssl.SSLError) as error:
            log.warning("could not load the certificate %s: %s; keeping the old one", chain, error)
            return known
        log.info("loaded the certificate %s for %s", chain, ", ".join(sorted(certificate.names)))
        return certificate
