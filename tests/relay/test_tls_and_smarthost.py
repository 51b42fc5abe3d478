"""STARTTLS to peers under each policy, and the smart host with AUTH over TLS."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from apps.relay import delivery
from apps.relay.pool import Pool
from tests.relay.conftest import TLS_NAME, World
from tests.relay.helpers import queue, reload
from tests.relay.sink import Sink


@pytest.fixture
def pool() -> Iterator[Pool]:
    connections = Pool(idle_seconds=5, max_transactions=100)
    yield connections
    connections.close_all()


@pytest.fixture
def plain_sink() -> Iterator[Sink]:
    """A server that offers no STARTTLS at all."""
    server = Sink().start()
    yield server
    server.stop()


@pytest.fixture
def smarthost(world: World) -> Iterator[Sink]:
    server = Sink(cert=world.cert, key=world.key, credentials=("relay-user", "s3cret")).start()
    yield server
    server.stop()


def test_a_valid_certificate_is_verified_and_logged(
    personas, zone, sink, pool, settings, world, caplog
):
    settings.RELAY_CA_FILE = str(world.cert)
    zone.mx("remote.test", (10, TLS_NAME))
    [row] = queue(personas["alice"], ["friend@remote.test"])
    with caplog.at_level(logging.INFO, logger="apps.relay"):
        assert delivery.attempt(row.pk, resolver=zone.resolver, pool=pool) == "delivered"
    assert sink.messages()[0].tls
    assert f"connected to {TLS_NAME} [127.0.0.1]: TLSv1.3" in caplog.text
    assert "certificate verified" in caplog.text


def test_a_bad_certificate_is_logged_and_mail_still_goes_encrypted(
    personas, zone, sink, pool, caplog
):
    zone.mx("remote.test")  # the certificate is for another name, and nobody vouches for it
    [row] = queue(personas["alice"], ["friend@remote.test"])
    with caplog.at_level(logging.INFO, logger="apps.relay"):
        assert delivery.attempt(row.pk, resolver=zone.resolver, pool=pool) == "delivered"
    assert sink.messages()[0].tls
    assert "certificate NOT verified" in caplog.text


def test_the_verify_policy_keeps_mail_from_a_server_with_a_bad_certificate(
    personas, zone, sink, pool, settings
):
    settings.RELAY_TLS_POLICY = "verify"
    zone.mx("remote.test")
    [row] = queue(personas["alice"], ["friend@remote.test"])
    assert delivery.attempt(row.pk, resolver=zone.resolver, pool=pool) == "queued"
    assert sink.messages() == []
    assert reload(row).recipients[0]["code"] == "4.7.5"


def test_a_server_without_starttls_gets_mail_in_clear_unless_the_policy_says_encrypt(
    personas, zone, plain_sink, pool, settings
):
    settings.RELAY_PORT = plain_sink.port
    zone.mx("remote.test")
    [row] = queue(personas["alice"], ["friend@remote.test"])
    assert delivery.attempt(row.pk, resolver=zone.resolver, pool=pool) == "delivered"
    assert not plain_sink.messages()[0].tls
    settings.RELAY_TLS_POLICY = "encrypt"
    [row] = queue(personas["alice"], ["other@remote.test"])
    assert delivery.attempt(row.pk, resolver=zone.resolver, pool=pool) == "queued"
    assert "does not offer STARTTLS" in reload(row).last_error
    assert len(plain_sink.messages()) == 1


def test_the_smart_host_takes_everything_with_auth_over_verified_tls(
    personas, zone, sink, smarthost, pool, settings, world
):
    settings.RELAY_SMARTHOST = ("127.0.0.1", smarthost.port)
    settings.RELAY_SMARTHOST_USER, settings.RELAY_SMARTHOST_PASSWORD = "relay-user", "s3cret"
    settings.RELAY_CA_FILE = str(world.cert)
    zone.mx("remote.test")  # ignored: the smart host carries everything
    rows = queue(personas["alice"], ["a@remote.test", "b@elsewhere.test"])
    for row in rows:
        assert delivery.attempt(row.pk, resolver=zone.resolver, pool=pool) == "delivered"
    assert sink.messages() == []
    received = smarthost.messages()
    assert sorted(r for m in received for r in m.recipients) == [
        "a@remote.test",
        "b@elsewhere.test",
    ]
    assert all(m.tls and m.login == "relay-user" for m in received)


def test_a_refused_smart_host_login_keeps_the_mail_queued(
    personas, zone, smarthost, pool, settings, world
):
    settings.RELAY_SMARTHOST = ("127.0.0.1", smarthost.port)
    settings.RELAY_SMARTHOST_USER, settings.RELAY_SMARTHOST_PASSWORD = "relay-user", "wrong"
    settings.RELAY_CA_FILE = str(world.cert)
    [row] = queue(personas["alice"], ["a@remote.test"])
    assert delivery.attempt(row.pk, resolver=zone.resolver, pool=pool) == "queued"
    assert "AUTH" in reload(row).last_error
    assert smarthost.messages() == []


def test_the_smart_host_is_never_used_without_a_valid_certificate(
    personas, zone, smarthost, pool, settings
):
    settings.RELAY_SMARTHOST = ("127.0.0.1", smarthost.port)
    settings.RELAY_SMARTHOST_USER, settings.RELAY_SMARTHOST_PASSWORD = "relay-user", "s3cret"
    [row] = queue(personas["alice"], ["a@remote.test"])  # no CA file: the certificate is unknown
    assert delivery.attempt(row.pk, resolver=zone.resolver, pool=pool) == "queued"
    assert smarthost.messages() == []


def test_one_run_carries_mail_for_every_domain_over_one_smart_host_connection(
    personas, zone, sink, smarthost, pool, settings, world
):
    settings.RELAY_SMARTHOST = ("127.0.0.1", smarthost.port)
    settings.RELAY_SMARTHOST_USER, settings.RELAY_SMARTHOST_PASSWORD = "relay-user", "s3cret"
    settings.RELAY_CA_FILE = str(world.cert)
    alice = personas["alice"]
    rows = [queue(alice, [f"friend@{name}.test"])[0] for name in ("one", "two", "three")]
    [local] = queue(alice, [personas["bob"].address])  # ours: filed, never sent out
    assert delivery.run(rows[0].pk, resolver=zone.resolver, pool=pool) == 3
    assert sorted(r for m in smarthost.messages() for r in m.recipients) == [
        "friend@one.test",
        "friend@three.test",
        "friend@two.test",
    ]
    assert smarthost.connections == 1
    assert [reload(row).state for row in rows] == ["delivered"] * 3
    assert reload(local).state == "queued"
