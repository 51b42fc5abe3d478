"""Certificates on disk, shared by every node through the data directory.

One folder per certificate, `<certs dir>/<name>/fullchain.pem` and `privkey.pem`, which the
TLS listeners load (by the names in each certificate's SAN). A new certificate goes into a
folder of its own and `<name>` is switched to it by renaming a symbolic link, so a reader
never sees the new key beside the old certificate.
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

FULLCHAIN = "fullchain.pem"
PRIVKEY = "privkey.pem"
VERSIONS = ".versions"  # issued folders, beside the links; a dot keeps them out of listings
KEEP_VERSIONS = 2  # the one in use and the one before, for a node still reading it
# RFC 8555 §8.1: a token is base64url; anything else never names a file here.
TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")
# A host name (the SNI of a TLS-ALPN-01 validation): letters, digits, hyphens, dots.
HOST_NAME = re.compile(r"[a-z0-9-]+(\.[a-z0-9-]+)*", re.IGNORECASE)


@dataclass(frozen=True)
class Installed:
    """What the folder of one certificate holds: its names and validity."""

    folder: Path
    names: frozenset[str]
    not_before: datetime.datetime
    not_after: datetime.datetime
    serial: int


def load(certs_dir: Path, name: str) -> Installed | None:
    """The certificate in `<certs_dir>/<name>`, or None when there is none (or it is not
    readable as PEM: then it is as good as missing and a new one is ordered)."""
    folder = certs_dir / name
    try:
        cert = x509.load_pem_x509_certificate((folder / FULLCHAIN).read_bytes())
    except (OSError, ValueError):
        return None
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = frozenset(n.lower() for n in san.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        names = frozenset()
    return Installed(
        folder, names, cert.not_valid_before_utc, cert.not_valid_after_utc, cert.serial_number
    )


def install(certs_dir: Path, name: str, key_pem: bytes, fullchain_pem: bytes) -> Path:
    """Write a key and its chain as `<certs_dir>/<name>`, replacing what was there in one
    step (a rename of the link); returns the folder."""
    versions = certs_dir / VERSIONS
    versions.mkdir(parents=True, exist_ok=True)
    serial = x509.load_pem_x509_certificate(fullchain_pem).serial_number
    version = versions / f"{name}-{serial:x}"
    version.mkdir(exist_ok=True)
    _write(version / PRIVKEY, key_pem, 0o600)
    _write(version / FULLCHAIN, fullchain_pem, 0o644)
    link = certs_dir / name
    staged = certs_dir / f".{name}.link"
    staged.unlink(missing_ok=True)
    # Relative, so every node that mounts the data dir elsewhere still finds it.
    staged.symlink_to(Path(VERSIONS) / version.name, target_is_directory=True)
    if link.is_dir() and not link.is_symlink():
        raise IsADirectoryError(f"{link} holds certificate files put there by hand; not replaced")
    os.replace(staged, link)
    _prune(versions, name, keep=version)
    return link


def _write(path: Path, data: bytes, mode: int) -> None:
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)


def _prune(versions: Path, name: str, keep: Path) -> None:
    """Remove all but the newest issued folders of `name`."""
    mine = sorted(versions.glob(f"{name}-*"), key=lambda p: p.stat().st_mtime, reverse=True)
    old = [p for p in mine if p != keep][KEEP_VERSIONS - 1 :]
    for folder in old:
        shutil.rmtree(folder, ignore_errors=True)


class Challenges:
    """HTTP-01 answers (RFC 8555 §8.3) as files named by token, and TLS-ALPN-01 certificates
    (RFC 8737 §3) as `tls-alpn/<name>.pem`, so whichever node the CA's request reaches can
    answer it, not only the node that placed the order."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def put(self, token: str, key_authorization: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        _write(self.folder / token, key_authorization.encode(), 0o644)

    def remove(self, token: str) -> None:
        (self.folder / token).unlink(missing_ok=True)

    def get(self, token: str) -> bytes | None:
        if not TOKEN.fullmatch(token):
            return None
        try:
            return (self.folder / token).read_bytes()
        except OSError:
            return None

    def put_certificate(self, name: str, pem: bytes) -> None:
        """The key and self-signed certificate to present for `name` (one PEM file)."""
        (self.folder / "tls-alpn").mkdir(parents=True, exist_ok=True)
        _write(self.folder / "tls-alpn" / f"{name.lower()}.pem", pem, 0o600)

    def remove_certificate(self, name: str) -> None:
        (self.folder / "tls-alpn" / f"{name.lower()}.pem").unlink(missing_ok=True)

    def certificate_file(self, name: str) -> Path | None:
        """The file to present when a client asks for `name` with ALPN acme-tls/1."""
        if not HOST_NAME.fullmatch(name) or len(name) > 253:
            return None
        path = self.folder / "tls-alpn" / f"{name.lower()}.pem"
        return path if path.is_file() else None
