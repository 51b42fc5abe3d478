"""Debian's `pebble` ACME test server, run by a test on 127.0.0.1.

    with Pebble(tmp_path, http_port=web_port, dns=zone_server) as ca:
        settings.ACME_DIRECTORY, settings.ACME_CA_BUNDLE = ca.directory, ca.ca_bundle

Its HTTPS certificate comes from a CA made here (the package ships none), which the client
trusts through MAILHOST_ACME_CA_BUNDLE. Validation goes to `http_port` (HTTP-01) or
`tls_port` (TLS-ALPN-01) on whatever the test's DNS server says each name is.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import shutil
import socket
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path
from types import TracebackType

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.dnsserver import ZoneServer

BINARY = shutil.which("pebble") or "/usr/bin/pebble"
START_TIMEOUT = 10.0  # seconds


def free_port() -> int:
    """A port free on 127.0.0.1 now, for a server that cannot be told to take port 0."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_https_certificate(folder: Path) -> tuple[Path, Path, Path]:
    """A test CA and a certificate it signs for 127.0.0.1 and localhost: (ca, cert, key)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("mailhost test CA for pebble"))
        .issuer_name(_name("mailhost test CA for pebble"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    alt_names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(_pem_key(key))
    return paths


class Pebble:
    """A pebble process on a free loopback port, validating HTTP-01 against `http_port` and
    TLS-ALPN-01 against `tls_port`, and asking `dns` for every name; stopped on exit."""

    def __init__(
        self, folder: Path, *, http_port: int, dns: ZoneServer, tls_port: int | None = None
    ) -> None:
        self.folder = folder
        self.http_port = http_port
        self.tls_port = tls_port or free_port()
        self.dns = dns
        self.port = 0
        self.process: subprocess.Popen | None = None
        folder.mkdir(parents=True, exist_ok=True)
        self.ca_bundle, self._cert, self._key = make_https_certificate(folder)

    @property
    def directory(self) -> str:
        return f"https://127.0.0.1:{self.port}/dir"

    def start(self) -> Pebble:
        self.port = free_port()
        config = self.folder / "pebble-config.json"
        config.write_text(json.dumps({"pebble": self._config()}))
        env = {
            **os.environ,
            "PEBBLE_VA_NOSLEEP": "1",  # validate at once, not after a random pause
            "PEBBLE_VA_ALWAYS_VALID": "0",  # really fetch the challenge answers
            "PEBBLE_WFE_NONCEREJECT": "0",  # no random badNonce errors
            "PEBBLE_AUTHZREUSE": "0",  # every order validates afresh
        }
        dns_host, dns_port = self.dns.nameservers[0]
        self._log_file = (self.folder / "pebble.log").open("wb")
        self.process = subprocess.Popen(
            [BINARY, "-config", str(config), "-dnsserver", f"{dns_host}:{dns_port}"],
            env=env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )
        self._wait_until_up()
        return self

    def _config(self) -> dict:
        return {
            "listenAddress": f"127.0.0.1:{self.port}",
            "managementListenAddress": f"127.0.0.1:{free_port()}",
            "certificate": str(self._cert),
            "privateKey": str(self._key),
            "httpPort": self.http_port,
            "tlsPort": self.tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }

    def _wait_until_up(self) -> None:
        context = ssl.create_default_context(cafile=str(self.ca_bundle))
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                with urllib.request.urlopen(self.directory, timeout=2, context=context):
                    return
            except OSError:
                assert self.process is not None
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("pebble did not start: " + self.log()) from None
                time.sleep(0.05)

    def log(self) -> str:
        return (self.folder / "pebble.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
            self._log_file.close()

    def __enter__(self) -> Pebble:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
