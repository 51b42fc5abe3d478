"""The web app over TLS (the `webs` listener): the certificate is chosen by name (SNI) as
on the mail ports, so peers fetch our MTA-STS policy from https://mta-sts.<domain>/
(RFC 8461 §3.3) with a certificate valid for that name."""

from __future__ import annotations

import pytest

from apps.relay import mtasts
from tests.mailserver.test_sni import write_certificate
from tests.servers import RunningServer


@pytest.fixture
def web_server(transactional_db, dns_zone, settings, tmp_path):
    settings.TLS_CERTS_DIR = tmp_path / "certs"
    write_certificate(settings.TLS_CERTS_DIR / "mta-sts", "mta-sts.example.org")
    server = RunningServer(("web", "webs")).start()
    yield server
    server.stop()


def test_a_peer_fetches_our_policy_over_https_with_the_certificate_for_its_name(
    web_server, dns_zone, settings
):
    dns_zone.server.add("mta-sts.example.org. 300 IN A 127.0.0.1")
    # The relay's own fetcher, trusting only the certificate made for that name.
    settings.RELAY_CA_FILE = str(settings.TLS_CERTS_DIR / "mta-sts" / "fullchain.pem")
    settings.MTA_STS_FETCH_PORT = web_server.port("webs")
    text = mtasts.fetch("example.org", dns_zone.resolver)
    assert text == mtasts.own_policy()


def test_a_name_without_its_own_certificate_gets_the_default_one(web_server, dns_zone, settings):
    dns_zone.server.add("mta-sts.other.test. 300 IN A 127.0.0.1")
    settings.RELAY_CA_FILE = str(settings.TLS_CERTS_DIR / "mta-sts" / "fullchain.pem")
    settings.MTA_STS_FETCH_PORT = web_server.port("webs")
    with pytest.raises(mtasts.PolicyError) as refused:
        mtasts.fetch("other.test", dns_zone.resolver)
    assert refused.value.result_type == "sts-webpki-invalid"
