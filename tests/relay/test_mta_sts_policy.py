"""The pure parts of MTA-STS (RFC 8461): the TXT record, the policy file, mx patterns."""

from __future__ import annotations

import pytest

from apps.relay.mtasts import PolicyError, mx_matches, parse_policy, published_id, result_type


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        (["v=STSv1; id=20160831085700Z"], "20160831085700Z"),  # RFC 8461 §3.1 example
        (["v=spf1 -all", "v=STSv1;id=abc;"], "abc"),  # other records are ignored
        (["v=STSv1; id=a", "v=STSv1; id=b"], None),  # two STS records: none
        (["v=STSv1; id=has-dash"], None),  # sts-id-value is letters and digits
        (["v=STSv1; id=" + "a" * 33], None),  # at most 32 of them
        (["v=STSv1"], None),
        ([], None),
    ],
)
def test_it_reads_the_policy_id_of_the_one_sts_record(records, expected):
    assert published_id(records) == expected


def test_it_parses_a_policy_with_lf_or_crlf_lines_and_ignores_unknown_keys():
    text = "version: STSv1\nmode: enforce\r\nmx: mail.example.com\nmx: *.example.net\n"
    policy = parse_policy(text + "max_age: 604800\nfuture: yes\n")
    assert (policy.mode, policy.mx, policy.max_age) == (
        "enforce",
        ("mail.example.com", "*.example.net"),
        604800,
    )


@pytest.mark.parametrize(
    "text",
    [
        "mode: enforce\nmx: a.example\nmax_age: 1\n",  # no version
        "version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n",
        "version: STSv1\nmode: strict\nmx: a.example\nmax_age: 1\n",
        "version: STSv1\nmode: enforce\nmax_age: 1\n",  # mx required unless mode none
        "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: soon\n",
        "<html>not a policy</html>",
    ],
)
def test_it_refuses_a_policy_that_breaks_the_grammar(text):
    with pytest.raises(PolicyError) as caught:
        parse_policy(text)
    assert caught.value.result_type == "sts-policy-invalid"


def test_it_caps_max_age_at_a_year():
    policy = parse_policy("version: STSv1\nmode: none\nmax_age: 9999999999\n")
    assert policy.max_age == 31557600  # RFC 8461 §3.2


@pytest.mark.parametrize(
    ("pattern", "host", "expected"),
    [
        ("mail.example.com", "mail.example.com", True),
        ("mail.example.com", "MAIL.Example.com.", True),
        ("*.example.com", "mx1.example.com", True),
        ("*.example.com", "example.com", False),  # RFC 8461 §4.1: one label, not zero
        ("*.example.com", "a.b.example.com", False),  # nor two
        ("mail.example.com", "other.example.com", False),
    ],
)
def test_it_matches_mx_patterns_as_rfc_8461_says(pattern, host, expected):
    assert mx_matches(pattern, host) is expected


@pytest.mark.parametrize(
    ("problem", "expected"),
    [
        (
            "certificate of mx: Hostname mismatch, certificate is not valid for 'mx'.",
            "certificate-host-mismatch",
        ),
        ("certificate of mx: certificate has expired", "certificate-expired"),
        ("certificate of mx: self-signed certificate", "certificate-not-trusted"),
        ("mx.example does not offer STARTTLS", "starttls-not-supported"),
        ("not offered", "starttls-not-supported"),
    ],
)
def test_it_names_tls_failures_with_rfc_8460_result_types(problem, expected):
    assert result_type(problem) == expected
