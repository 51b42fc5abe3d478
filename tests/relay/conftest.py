"""The outside world of the relay tests, all on 127.0.0.1: a DNS server and a receiving SMTP
server for the whole run.

They start when this file is imported, before any test runs, because the Celery worker
process (tests/conftest.py starts one per run) reads where DNS and the remote MX port are
from its environment when it starts: every worker of the run resolves through this DNS
server and delivers to this sink, and nothing leaves loopback.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from apps.mailauth.dns import Resolver
from apps.mailserver.tls import ensure_certificate
from apps.relay.pool import Pool
from tests.dnsserver import ZoneServer
from tests.relay.policyserver import PolicyServer
from tests.relay.sink import Sink

TLS_NAME = "mx.verified.test"  # the sink's certificate is for this name (and 127.0.0.1)


class World:
    """The DNS server, the sink and its certificate; one of each for the run."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="relay-tests-"))
        self.cert, self.key = self.dir / "cert.pem", self.dir / "key.pem"
        ensure_certificate(self.cert, self.key, TLS_NAME)
        self.dns = ZoneServer().start()
        self.sink = Sink(cert=self.cert, key=self.key).start()

    @property
    def dns_servers(self) -> str:
        return ",".join(f"{host}:{port}" for host, port in self.dns.nameservers)

    def environment(self) -> dict[str, str]:
        return {
            "MAILHOST_DNS_SERVERS": self.dns_servers,
            "MAILHOST_RELAY_PORT": str(self.sink.port),
            "MAILHOST_RELAY_RETRY_DELAYS": "1,2",
            "MAILHOST_RELAY_TIMEOUT": "15",
            "MAILHOST_RELAY_CONNECT_TIMEOUT": "5",
            "MAILHOST_RELAY_IDLE_SECONDS": "5",
        }

    def close(self) -> None:
        self.sink.stop()
        self.dns.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


WORLD = World()
os.environ.update(WORLD.environment())
atexit.register(WORLD.close)


class Zone:
    """Records for one test on the shared DNS server, removed when the test ends."""

    def __init__(self, server: ZoneServer) -> None:
        self.server = server
        self.names: set[str] = set()
        self.resolver = Resolver(server.nameservers, timeout=2.0)

    def add(self, line: str) -> None:
        self.names.add(line.split()[0].rstrip("."))
        self.server.add(line)

    def add_txt(self, name: str, value: str) -> None:
        self.names.add(name)
        self.server.add_txt(name, value)

    def mx(self, domain: str, *hosts: tuple[int, str], address: str = "127.0.0.1") -> None:
        """MX records for `domain`; each host gets an A record at `address`."""
        for preference, host in hosts or ((10, f"mx.{domain}"),):
            self.add(f"{domain}. MX {preference} {host}.")
            if host != "." and host.rstrip(".") not in self.names:
                self.add(f"{host}. A {address}")

    def mta_sts(self, domain: str, policy_id: str) -> None:
        """RFC 8461 §3.1 TXT record of `domain`, and its policy host on 127.0.0.1."""
        self.server.remove(f"_mta-sts.{domain}")
        self.add_txt(f"_mta-sts.{domain}", f"v=STSv1; id={policy_id}")
        if f"mta-sts.{domain}" not in self.names:
            self.add(f"mta-sts.{domain}. A 127.0.0.1")

    def clear(self) -> None:
        for name in self.names:
            self.server.remove(name)
        self.names.clear()


@pytest.fixture
def zone() -> Iterator[Zone]:
    records = Zone(WORLD.dns)
    yield records
    records.clear()


@pytest.fixture
def sink() -> Iterator[Sink]:
    WORLD.sink.reset()
    yield WORLD.sink
    WORLD.sink.reset()


@pytest.fixture
def pool() -> Iterator[Pool]:
    connections = Pool(idle_seconds=5, max_transactions=100)
    yield connections
    connections.close_all()


@pytest.fixture
def policy_server(tmp_path: Path, settings) -> Iterator[PolicyServer]:
    """The HTTPS server for mta-sts.remote.test; its certificate and the sink's are what
    the relay trusts (MAILHOST_RELAY_CA_FILE), as public CAs would be in production."""
    server = PolicyServer(tmp_path, "mta-sts.remote.test").start()
    bundle = tmp_path / "trusted.pem"
    bundle.write_bytes(WORLD.cert.read_bytes() + server.cert.read_bytes())
    settings.RELAY_CA_FILE = str(bundle)
    settings.MTA_STS_FETCH_PORT = server.port
    yield server
    server.stop()


@pytest.fixture
def world() -> World:
    return WORLD


@pytest.fixture(autouse=True)
def _relay_settings(settings, _no_dns_off_loopback) -> None:
    """This process sees what the worker sees (after tests/conftest.py's DNS guard)."""
    settings.DNS_SERVERS = WORLD.dns_servers
    settings.RELAY_PORT = WORLD.sink.port
    settings.RELAY_RETRY_DELAYS = [1, 2]
    settings.RELAY_TIMEOUT = 15
    settings.RELAY_CONNECT_TIMEOUT = 5
    settings.RELAY_IDLE_SECONDS = 5
    settings.RELAY_REDISPATCH_SECONDS = 2  # tests sweep while they wait (helpers.wait_until)
