"""Our own MTA-STS policy (RFC 8461 §3.3), served by the web listener for every domain."""

from __future__ import annotations

import urllib.request

from apps.relay.mtasts import parse_policy


def fetch_policy(mailserver, host: str = "mta-sts.example.org") -> tuple[str, str]:
    url = f"http://127.0.0.1:{mailserver.port('web')}/.well-known/mta-sts.txt"
    # Peers ask with mta-sts.<domain> in Host, a name ALLOWED_HOSTS does not list.
    request = urllib.request.Request(url, headers={"Host": host})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.headers["Content-Type"], response.read().decode()


def test_it_serves_a_testing_policy_naming_this_host_by_default(mailserver, settings):
    content_type, text = fetch_policy(mailserver)
    assert content_type == "text/plain"  # RFC 8461 §3.2
    policy = parse_policy(text)
    assert policy.mode == "testing"
    assert policy.mx == (settings.MAILHOST_HOSTNAME.lower(),)
    assert policy.max_age == settings.MTA_STS_MAX_AGE


def test_it_serves_the_configured_mode_and_max_age(mailserver, settings):
    settings.MTA_STS_MODE = "enforce"
    settings.MTA_STS_MAX_AGE = 86400
    policy = parse_policy(fetch_policy(mailserver, "mta-sts.other.test")[1])
    assert (policy.mode, policy.max_age) == ("enforce", 86400)
