"""Shared fixtures: personas alice, bob and carol, and a running mail server."""

from __future__ import annotations

import os
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from apps.mailserver.worker import worker_command
from tests.servers import RunningServer

PASSWORD = "correct horse battery staple"
ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Persona:
    address: str
    password: str
    user: object

    @property
    def id(self) -> int:
        return self.user.pk  # type: ignore[attr-defined]


@pytest.fixture(scope="session", autouse=True)
def _own_task_queue():
    """This run's Celery queue, for this process and the workers it starts: runs that
    share a Redis (CI and a developer, say) must not take each other's tasks."""
    from mailhost.celery import app

    name = f"mailhost-test-{uuid.uuid4().hex[:12]}"
    os.environ["MAILHOST_QUEUE"] = name
    app.conf.task_default_queue = name
    return name


@pytest.fixture(scope="session", autouse=True)
def _session_blob_dir(tmp_path_factory):
    """One blob directory for the run, shared with worker processes through the env."""
    from django.conf import settings

    blob_dir = tmp_path_factory.mktemp("blobs")
    settings.BLOB_DIR = blob_dir
    os.environ["MAILHOST_BLOB_DIR"] = str(blob_dir)
    return blob_dir


@pytest.fixture(autouse=True)
def _own_index_dir(settings, tmp_path):
    """IMAP index files of this test only: tests roll back, so folder ids come again."""
    settings.IMAP_INDEX_DIR = tmp_path / "imap-index"


@pytest.fixture
def dns_zone(settings):
    """A real DNS server on 127.0.0.1 for this test, and the server pointed at it."""
    from apps.mailauth.dns import Resolver
    from tests.dnsserver import DNSZone, ZoneServer

    with ZoneServer() as server:
        settings.DNS_SERVERS = ",".join(f"{host}:{port}" for host, port in server.nameservers)
        yield DNSZone(server, Resolver(server.nameservers, timeout=2.0))


@pytest.fixture(autouse=True)
def _no_dns_off_loopback(settings):
    # Nothing in a test may ask the internet's DNS: without `dns_zone`, lookups go to a
    # loopback port where nothing answers, and fail fast as temporary errors.
    settings.DNS_SERVERS = "127.0.0.1:9"


@pytest.fixture(autouse=True)
def _no_acme(settings):
    # Servers that tests start order no certificates unless the test turns ACME on.
    settings.ACME = "off"


@pytest.fixture(autouse=True)
def _fast_hashing(settings):
    # Real Django hashers, but a cheap one: tests create many users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    from django.core.cache import cache

    cache.clear()  # throttles and the auth cache start fresh in every test


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, django_db_blocker):
    """A real Celery worker process on the test database (embedded broker or Redis)."""
    from django.conf import settings
    from django.db import connection

    queue = settings.DATA_DIR / "queue"
    for sub in ("in", "processed"):
        for stale in (queue / sub).glob("*"):
            stale.unlink(missing_ok=True)
    env = {**os.environ, "MAILHOST_DB_NAME": str(connection.settings_dict["NAME"])}
    # As in this process: DNS goes to a loopback server, never to the internet's.
    env.setdefault("MAILHOST_DNS_SERVERS", "127.0.0.1:9")
    env.setdefault("MAILHOST_ACME", "off")
    process = subprocess.Popen(
        worker_command(concurrency=4, loglevel="WARNING", heartbeat=False),
        cwd=ROOT,
        env=env,
    )
    yield process
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()


def _make_personas(quota: int = 0) -> dict[str, Persona]:
    from apps.accounts import services
    from apps.accounts.models import Domain

    Domain.objects.get_or_create(name="example.org")
    people = {}
    for name in ("alice", "bob", "carol"):
        address = f"{name}@example.org"
        user = services.create_user(address, PASSWORD, quota_bytes=quota)
        people[name] = Persona(address, PASSWORD, user)
    return people


@pytest.fixture
def personas(db) -> dict[str, Persona]:
    return _make_personas()


@pytest.fixture
def live_personas(transactional_db) -> dict[str, Persona]:
    """Personas committed for real, for tests where a server thread or process reads them."""
    return _make_personas()


@pytest.fixture
def alice(personas) -> Persona:
    return personas["alice"]


@pytest.fixture
def mailserver(transactional_db, dns_zone):
    server = RunningServer().start()
    yield server
    server.stop()


@pytest.fixture
def mailsystem(mailserver, celery_worker):
    """The server and a worker filing what it accepts: mail goes all the way to folders."""
    return mailserver
