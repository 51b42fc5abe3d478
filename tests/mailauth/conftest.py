"""Fixtures for the mail authentication tests: a real DNS server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from apps.mailauth.dns import Resolver
from tests.dnsserver import DNSZone, ZoneServer


@pytest.fixture
def dns_zone() -> Iterator[DNSZone]:
    """An empty zone served on 127.0.0.1, and a resolver that asks nothing else."""
    with ZoneServer() as server:
        yield DNSZone(server, Resolver(server.nameservers, timeout=2.0))
