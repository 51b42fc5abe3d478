"""Outbound MTA-STS (RFC 8461): a destination's policy, fetched over HTTPS from a server on
127.0.0.1 and cached, decides which MX hosts get its mail and whether their certificates
must verify; every TLS session under a policy is counted for the TLS report (RFC 8460)."""

from __future__ import annotations

from apps.relay import delivery
from apps.relay.models import STSPolicy, TLSResult
from tests.relay.conftest import TLS_NAME, Zone
from tests.relay.helpers import queue, reload
from tests.relay.policyserver import PolicyServer

DOMAIN = "remote.test"
POLICY_HOST = f"mta-sts.{DOMAIN}"


def policy(mode: str, *mx: str, max_age: int = 86400) -> str:
    lines = ["version: STSv1", f"mode: {mode}", *(f"mx: {m}" for m in mx), f"max_age: {max_age}"]
    return "\r\n".join(lines) + "\r\n"


def publish(zone: Zone, server: PolicyServer, text: str, policy_id: str = "20261208") -> None:
    zone.mta_sts(DOMAIN, policy_id)
    server.serve(POLICY_HOST, text)


def results(result_type: str = "") -> int:
    rows = TLSResult.objects.filter(domain=DOMAIN, result_type=result_type)
    return sum(row.sessions for row in rows)


def test_it_defers_mail_under_enforce_when_the_mx_certificate_does_not_match(
    personas, zone, sink, pool, policy_server
):
    zone.mx(DOMAIN)  # mx.remote.test, while the sink's certificate is for mx.verified.test
    publish(zone, policy_server, policy("enforce", f"*.{DOMAIN}"))
    [row] = queue(personas["alice"], [f"friend@{DOMAIN}"])
    assert delivery.attempt(row.pk, resolver=zone.resolver, pool=pool) == "queued"
    assert sink.messages() == []
    [recipient] = reload(row).recipients
    assert recipient["code"] == "4.7.5"  # RFC 3463 §3.8, temporary: retried later
    assert "MTA-STS policy of remote.test (enforce) requires a valid certificate" in (
        reload(row).last_error
    )
    assert results("certificate-host-mismatch") == 1


def test_it_delivers_under_enforce_when_the_mx_certificate_matches(
    personas, zone, sink, pool, policy_server
):
    zone.mx(DOMAIN, (10, TLS_NAME))
    publish(zone, policy_server, policy("enforce", TLS_NAME))
    [row] = queue(personas["alice"], [f"friend@{DOMAIN}"])
    assert delivery.attempt(row.pk, resolver=zone.resolver, pool=pool) == "delivered"
    assert sink.messages()[0].tls
    assert results("") == 1


def test_it_delivers_under_testing_and_counts_the_failure(
    personas, zone, sink, pool, policy_server
):
    zone.mx(DOMAIN)
    publish(zone, policy_server, policy("testing", f"*.{DOMAIN}"))
    [row] = queue(personas["alice"], [f"friend@{DOMAIN}"])
    assert delivery.attempt(row.pk, resolver=zone.resolver, pool=pool) == "delivered"
    assert results("certificate-host-mismatch") == 1  # RFC 8461 §5.2: report, deliver


def test_it_uses_no_mx_host_an_enforce_policy_does_not_list(
    personas, zone, sink, pool, policy_server
):
    zone.mx(DOMAIN, (10, TLS_NAME))  # a valid certificate, but not a host the policy names
    publish(zone, policy_server, policy("enforce", f"*.{DOMAIN}"))
    [row] = queue(personas["alice"], [f"friend@{DOMAIN}"])
    assert delivery.attempt(row.pk, resolver=zone.resolver, pool=pool) == "queued"
    assert sink.messages() == []
    assert "allows none of its MX hosts" in reload(row).last_error
    assert results("validation-failure") == 1


def test_it_fetches_the_policy_again_only_when_its_id_changes(
    personas, zone, sink, pool, policy_server
):
    zone.mx(DOMAIN, (10, TLS_NAME))
    publish(zone, policy_server, policy("testing", TLS_NAME))
    for _ in range(2):
        [row] = queue(personas["alice"], [f"friend@{DOMAIN}"])
        assert delivery.attempt(row.pk, resolver=zone.resolver, pool=pool) == "delivered"
    assert len(policy_server.requests) == 1  # RFC 8461 §5.1: cached while the id stands
    publish(zone, policy_server, policy("enforce", TLS_NAME), policy_id="20261209")
    [row] = queue(personas["alice"], [f"friend@{DOMAIN}"])
    assert delivery.attempt(row.pk, resolver=zone.resolver, pool=pool) == "delivered"
    assert policy_server.requests == [(POLICY_HOST, "/.well-known/mta-sts.txt")] * 2
    assert STSPolicy.objects.get(domain=DOMAIN).mode == "enforce"


def test_a_cached_policy_still_applies_when_a_new_one_cannot_be_fetched(
    personas, zone, sink, pool, policy_server
):
    zone.mx(DOMAIN)
    publish(zone, policy_server, policy("enforce", f"*.{DOMAIN}"))
    [row] = queue(personas["alice"], [f"friend@{DOMAIN}"])
    assert delivery.attempt(row.pk, resolver=zone.resolver, pool=pool) == "queued"
    publish(zone, policy_server, "", policy_id="20261209")
    policy_server.serve(POLICY_HOST, "gone", status=500)
    [row] = queue(personas["alice"], [f"friend@{DOMAIN}"])
    # RFC 8461 §5.1: an unexpired cached policy is used when a fetch fails.
    assert delivery.attempt(row.pk, resolver=zone.resolver, pool=pool) == "queued"
    assert sink.messages() == []
    assert results("sts-policy-fetch-error") == 1


def test_it_follows_no_redirect_and_delivers_as_without_a_policy(
    personas, zone, sink, pool, policy_server
):
    zone.mx(DOMAIN)
    publish(zone, policy_server, "")
    policy_server.serve(POLICY_HOST, "moved", status=301)  # RFC 8461 §3.3: not followed
    [row] = queue(personas["alice"], [f"friend@{DOMAIN}"])
    assert delivery.attempt(row.pk, resolver=zone.resolver, pool=pool) == "delivered"
    assert results("sts-policy-fetch-error") == 1
    assert not STSPolicy.objects.exists()


def test_it_refuses_a_policy_host_whose_certificate_does_not_verify(
    personas, zone, sink, pool, policy_server, settings, world
):
    settings.RELAY_CA_FILE = str(world.cert)  # the policy host's certificate is not trusted
    zone.mx(DOMAIN)
    publish(zone, policy_server, policy("enforce", f"*.{DOMAIN}"))
    [row] = queue(personas["alice"], [f"friend@{DOMAIN}"])
    assert delivery.attempt(row.pk, resolver=zone.resolver, pool=pool) == "delivered"
    assert results("sts-webpki-invalid") == 1  # RFC 8460 §4.3.2.2
