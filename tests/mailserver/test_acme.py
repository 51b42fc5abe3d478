"""Certificates from an ACME CA (RFC 8555): Debian's pebble on 127.0.0.1 validates HTTP-01
challenges (§8.3) against the server's web listener, names resolved by the test's DNS."""

from __future__ import annotations

import datetime
import socket
import ssl
import stat
import time
import urllib.error
import urllib.request

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.utils import timezone

from apps.accounts.models import Domain
from apps.mailserver import certstore, renewal
from apps.mailserver.models import CertificateOrderState
from tests.pebble import Pebble, free_port
from tests.servers import RunningServer

HOSTNAME = "mx.example.net"
OURS = ("mx.example.net", "mail.example.org", "autoconfig.example.org", "mta-sts.example.org")


def point_names_here(dns_zone) -> None:
    """The host name and example.org's names resolve here, elsewhere.org's do not."""
    for name in OURS:
        dns_zone.server.add(f"{name}. A 127.0.0.1")
    dns_zone.server.add("mail.elsewhere.org. A 192.0.2.1")
    Domain.objects.create(name="example.org")
    Domain.objects.create(name="elsewhere.org")


def use_ca(settings, tmp_path, ca: Pebble) -> None:
    settings.ACME = "on"
    settings.ACME_DIRECTORY = ca.directory
    settings.ACME_CA_BUNDLE = str(ca.ca_bundle)
    settings.ACME_EMAIL = "postmaster@example.org"
    settings.ACME_STATE_DIR = tmp_path / "acme"
    settings.ACME_RETRY_DELAYS = [3600, 14400]
    settings.TLS_CERTS_DIR = tmp_path / "certs"
    settings.MAILHOST_HOSTNAME = HOSTNAME


@pytest.fixture
def acme(settings, tmp_path, mailserver, dns_zone):
    """ACME on, pointed at a pebble that validates against the running server's web port."""
    point_names_here(dns_zone)
    with Pebble(tmp_path / "pebble", http_port=mailserver.port("web"), dns=dns_zone.server) as ca:
        use_ca(settings, tmp_path, ca)
        yield ca


@pytest.fixture
def acme_without_port_80(settings, tmp_path, transactional_db, dns_zone):
    """Port 80 not served: pebble validates TLS-ALPN-01 against the listener for it, and
    HTTP-01 would find nothing listening."""
    point_names_here(dns_zone)
    server = RunningServer(("tls_alpn",)).start()
    try:
        with Pebble(
            tmp_path / "pebble",
            http_port=free_port(),
            tls_port=server.port("tls_alpn"),
            dns=dns_zone.server,
        ) as ca:
            use_ca(settings, tmp_path, ca)
            settings.LISTENERS = {**settings.LISTENERS, "http": None, "tls_alpn": ("::", 443)}
            yield server
    finally:
        server.stop()


def renew(dns_zone, at: datetime.datetime | None = None) -> str:
    return renewal.renew(clock=lambda: at or timezone.now(), resolver=dns_zone.resolver)


def installed(settings) -> certstore.Installed:
    found = certstore.load(settings.TLS_CERTS_DIR, HOSTNAME)
    assert found is not None
    return found


def near_expiry(cert: certstore.Installed) -> datetime.datetime:
    """Just inside the last third of the certificate's lifetime."""
    lifetime = cert.not_after - cert.not_before
    return cert.not_after - lifetime / 3 + datetime.timedelta(minutes=1)


def test_it_obtains_one_certificate_for_the_host_and_the_domain_names_that_point_here(
    acme, settings, dns_zone
):
    assert renew(dns_zone) == "renewed"
    folder = settings.TLS_CERTS_DIR / HOSTNAME
    chain = x509.load_pem_x509_certificates((folder / "fullchain.pem").read_bytes())
    key = serialization.load_pem_private_key((folder / "privkey.pem").read_bytes(), None)
    assert installed(settings).names == set(OURS)  # not mail.elsewhere.org (192.0.2.1)
    assert isinstance(key, rsa.RSAPrivateKey)
    assert chain[0].public_key() == key.public_key()
    assert chain[0].issuer != chain[0].subject and len(chain) >= 2  # issued, with its chain
    assert stat.S_IMODE((folder / "privkey.pem").stat().st_mode) == 0o600
    assert (settings.ACME_STATE_DIR / "account-key.pem").exists()


def test_a_current_certificate_is_not_ordered_again(acme, settings, dns_zone):
    assert renew(dns_zone) == "renewed"
    serial = installed(settings).serial
    assert renew(dns_zone) == "current"
    assert installed(settings).serial == serial


def test_it_renews_when_a_third_of_the_lifetime_is_left(acme, settings, dns_zone):
    renew(dns_zone)
    first = installed(settings)
    just_before = near_expiry(first) - datetime.timedelta(minutes=2)
    assert renew(dns_zone, at=just_before) == "current"
    assert renew(dns_zone, at=near_expiry(first)) == "renewed"
    assert installed(settings).serial != first.serial


def test_a_new_domain_pointing_here_gets_a_new_certificate_with_its_names(acme, settings, dns_zone):
    renew(dns_zone)
    Domain.objects.create(name="example.com")
    dns_zone.server.add("mail.example.com. A 127.0.0.1")
    assert renew(dns_zone) == "renewed"
    assert installed(settings).names == {*OURS, "mail.example.com"}


def test_a_failed_order_keeps_the_old_certificate_and_retries_after_a_backoff(
    acme, settings, dns_zone
):
    renew(dns_zone)
    old = installed(settings)
    # mail.example.org now resolves to an address where nothing listens: the CA's
    # validation request cannot reach the challenge (RFC 8555 §8.3).
    dns_zone.server.remove("mail.example.org", "A")
    dns_zone.server.add("mail.example.org. A 127.0.0.2")
    failed_at = near_expiry(old)
    assert renew(dns_zone, at=failed_at) == "failed"
    assert installed(settings) == old
    state = CertificateOrderState.objects.get()
    assert state.failures == 1 and "mail.example.org" in state.last_error
    assert state.next_attempt_at == failed_at + datetime.timedelta(seconds=3600)
    dns_zone.server.remove("mail.example.org", "A")
    dns_zone.server.add("mail.example.org. A 127.0.0.1")
    assert renew(dns_zone, at=failed_at + datetime.timedelta(minutes=59)) == "waiting"
    assert renew(dns_zone, at=failed_at + datetime.timedelta(minutes=61)) == "renewed"
    assert installed(settings).serial != old.serial
    assert CertificateOrderState.objects.get().failures == 0


def test_a_second_failure_waits_the_next_delay(acme, settings, dns_zone):
    dns_zone.server.remove("mx.example.net", "A")
    dns_zone.server.add("mx.example.net. A 127.0.0.2")
    now = timezone.now()
    assert renew(dns_zone, at=now) == "failed"
    later = now + datetime.timedelta(seconds=3601)
    assert renew(dns_zone, at=later) == "failed"
    state = CertificateOrderState.objects.get()
    assert state.next_attempt_at == later + datetime.timedelta(seconds=14400)
    assert certstore.load(settings.TLS_CERTS_DIR, HOSTNAME) is None


def test_no_node_orders_while_another_holds_the_lease(acme, settings, dns_zone):
    now = timezone.now()
    CertificateOrderState.objects.create(
        name="acme", holder="other-node:1", lease_until=now + datetime.timedelta(minutes=5)
    )
    assert renew(dns_zone, at=now) == "waiting"
    assert certstore.load(settings.TLS_CERTS_DIR, HOSTNAME) is None
    # A holder that died: its lease runs out and the next check orders.
    assert renew(dns_zone, at=now + datetime.timedelta(minutes=6)) == "renewed"


def test_a_restarted_server_serves_the_certificate_from_the_data_dir_without_ordering(
    acme, settings, dns_zone, caplog
):
    renew(dns_zone)
    serial = installed(settings).serial
    caplog.set_level("INFO", logger="apps.mailserver.supervisor")
    server = RunningServer(("imaps", "web")).start()
    try:
        with socket.create_connection(("127.0.0.1", server.port("imaps")), timeout=10) as raw:
            client = ssl.create_default_context()
            client.check_hostname = False
            client.verify_mode = ssl.CERT_NONE
            with client.wrap_socket(raw, server_hostname=HOSTNAME) as tls:
                der = tls.getpeercert(binary_form=True)
        assert der is not None
        assert x509.load_der_x509_certificate(der).serial_number == serial
        wait_for(lambda: "certificate check at start-up: current" in caplog.text)
    finally:
        server.stop()
    assert installed(settings).serial == serial


def test_a_starting_node_orders_and_another_nodes_web_listener_answers_the_challenge(
    acme, settings, caplog
):
    # The `mailserver` node serves the web port the CA validates against; this second node,
    # with no web listener, orders at start-up: the answer travels through the shared data dir.
    caplog.set_level("INFO", logger="apps.mailserver.supervisor")
    server = RunningServer(("imaps",)).start()
    try:
        wait_for(lambda: "certificate check at start-up: renewed" in caplog.text, timeout=30)
    finally:
        server.stop()
    assert installed(settings).names == set(OURS)


def test_the_periodic_worker_task_orders_a_missing_certificate(acme, settings):
    from workers.tasks import renew_certificates

    assert renew_certificates.apply().get() == "renewed"
    assert installed(settings).names == set(OURS)
    scheduled = settings.CELERY_BEAT_SCHEDULE["renew-certificates"]
    assert scheduled["task"] == renew_certificates.name


def test_the_web_listener_answers_only_tokens_it_holds_whatever_the_host(
    acme, settings, mailserver
):
    certstore.Challenges(settings.ACME_STATE_DIR / "challenges").put("tok-1_A", "tok-1_A.thumb")
    base = f"http://127.0.0.1:{mailserver.port('web')}/.well-known/acme-challenge/"
    # The CA asks with the validated name in Host, which ALLOWED_HOSTS does not list.
    request = urllib.request.Request(base + "tok-1_A", headers={"Host": "mail.example.org"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.read() == b"tok-1_A.thumb"
    for missing in ("other", "..%2F..%2Fsecret_key", "tok.1"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(base + missing, timeout=10)
        refused.value.close()
        assert refused.value.code == 404


def test_where_port_80_is_not_served_it_validates_with_tls_alpn_01(
    acme_without_port_80, settings, dns_zone
):
    # RFC 8737 §3: the CA's handshake with ALPN acme-tls/1 finds the validation certificate.
    assert renew(dns_zone) == "renewed"
    assert installed(settings).names == set(OURS)


def test_the_tls_alpn_listener_ends_handshakes_for_names_it_validates_nothing_for(
    acme_without_port_80,
):
    client = ssl.create_default_context()
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    client.set_alpn_protocols(["acme-tls/1"])
    port = acme_without_port_80.port("tls_alpn")
    # No certificate to present: the handshake ends (asyncio may close before the alert).
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        pytest.raises((ssl.SSLError, ConnectionError)),
    ):
        client.wrap_socket(raw, server_hostname="mail.example.org")


@pytest.mark.parametrize(
    ("profile", "address", "enabled"),
    [
        ("production", "127.0.0.1", True),
        ("production", "192.0.2.1", False),  # resolves elsewhere: the CA could not reach us
        ("development", "127.0.0.1", False),
    ],
)
def test_auto_is_on_in_production_when_the_host_name_resolves_here(
    settings, dns_zone, profile, address, enabled
):
    settings.ACME = "auto"
    settings.PROFILE = profile
    settings.MAILHOST_HOSTNAME = HOSTNAME
    dns_zone.server.add(f"{HOSTNAME}. A {address}")
    assert renewal.enabled(dns_zone.resolver) is enabled


def test_auto_stays_off_when_an_own_certificate_is_configured(settings, dns_zone):
    settings.ACME = "auto"
    settings.PROFILE = "production"
    settings.TLS_CERT_CONFIGURED = True
    settings.MAILHOST_HOSTNAME = HOSTNAME
    dns_zone.server.add(f"{HOSTNAME}. A 127.0.0.1")
    assert renewal.enabled(dns_zone.resolver) is False


def wait_for(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
