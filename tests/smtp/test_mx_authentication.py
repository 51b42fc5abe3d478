"""Mail from the internet (port 25): SPF, DKIM and DMARC against records served by a real
DNS server on 127.0.0.1, recorded in Authentication-Results and Received-SPF."""

from __future__ import annotations

import re
import smtplib

import pytest

from apps.mailauth.dkim import generate_ed25519_key, generate_rsa_key, sign
from apps.mailstore.blobs import blob_store
from tests.mailclient import raw_message, wait_for_messages


def send(server, mail_from: str, to: str, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", server.port("smtp"), timeout=30) as client:
        client.ehlo("mta.sender.test")
        client.sendmail(mail_from, [to], raw)


def stored_headers(user_id: int) -> str:
    [message] = wait_for_messages(user_id, 1)
    raw = blob_store().read(message.blob_key)
    return raw.split(b"\r\n\r\n", 1)[0].decode()


@pytest.mark.parametrize(
    "record, expected",
    [
        ("v=spf1 ip4:127.0.0.1 -all", "pass"),
        ("v=spf1 ip4:192.0.2.1 -all", "fail"),
        ("v=spf1 ip4:192.0.2.1 ~all", "softfail"),
        (None, "none"),
    ],
)
def test_spf_result_is_recorded(mailsystem, live_personas, dns_zone, record, expected):
    bob = live_personas["bob"]
    if record:
        dns_zone.server.add(f'sender.test. 300 IN TXT "{record}"')
    send(
        mailsystem,
        "someone@sender.test",
        bob.address,
        raw_message("someone@sender.test", bob.address),
    )
    headers = stored_headers(bob.id)
    assert f"spf={expected}" in headers
    assert re.search(rf"^Received-SPF: {expected}\b", headers, re.IGNORECASE | re.MULTILINE)
    assert headers.startswith("Received: from mta.sender.test ([127.0.0.1])")


def publish_key(dns_zone, domain: str, selector: str, txt: str) -> None:
    dns_zone.server.add_txt(f"{selector}._domainkey.{domain}.", txt)


@pytest.mark.parametrize("keygen", [generate_rsa_key, generate_ed25519_key])
def test_a_valid_dkim_signature_passes_and_a_tampered_body_fails(
    mailsystem, live_personas, dns_zone, keygen
):
    bob, carol = live_personas["bob"], live_personas["carol"]
    private, txt = keygen()
    publish_key(dns_zone, "signer.test", "s1", txt)
    raw = raw_message("news@signer.test", bob.address, body="Signed body.\r\n")
    signed = sign(raw, domain="signer.test", selector="s1", private_key_pem=private) + raw
    send(mailsystem, "news@signer.test", bob.address, signed)
    assert "dkim=pass" in stored_headers(bob.id)
    tampered = signed.replace(b"Signed body.", b"Changed body")
    send(mailsystem, "news@signer.test", carol.address, tampered)
    assert "dkim=fail" in stored_headers(carol.id)


def test_dmarc_pass_through_aligned_spf(mailsystem, live_personas, dns_zone):
    bob = live_personas["bob"]
    dns_zone.server.add('brand.test. 300 IN TXT "v=spf1 ip4:127.0.0.1 -all"')
    dns_zone.server.add('_dmarc.brand.test. 300 IN TXT "v=DMARC1; p=reject"')
    send(mailsystem, "info@brand.test", bob.address, raw_message("info@brand.test", bob.address))
    assert "dmarc=pass" in stored_headers(bob.id)


def test_dmarc_fail_under_p_reject_is_refused_at_the_end_of_data(
    mailsystem, live_personas, dns_zone
):
    from apps.mailstore.models import Incoming

    bob = live_personas["bob"]
    dns_zone.server.add('brand.test. 300 IN TXT "v=spf1 ip4:192.0.2.1 -all"')
    dns_zone.server.add('_dmarc.brand.test. 300 IN TXT "v=DMARC1; p=reject"')
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(
            mailsystem, "info@brand.test", bob.address, raw_message("info@brand.test", bob.address)
        )
    assert refused.value.smtp_code == 550 and b"5.7.1" in refused.value.smtp_error
    assert not Incoming.objects.exists()


def test_dmarc_fail_under_p_none_is_delivered_and_marked(mailsystem, live_personas, dns_zone):
    bob = live_personas["bob"]
    dns_zone.server.add('brand.test. 300 IN TXT "v=spf1 ip4:192.0.2.1 -all"')
    dns_zone.server.add('_dmarc.brand.test. 300 IN TXT "v=DMARC1; p=none"')
    send(mailsystem, "info@brand.test", bob.address, raw_message("info@brand.test", bob.address))
    assert "dmarc=fail" in stored_headers(bob.id)


def test_a_forged_authentication_results_header_is_removed(mailsystem, live_personas, dns_zone):
    from django.conf import settings

    bob = live_personas["bob"]
    forged = f"Authentication-Results: {settings.MAILHOST_HOSTNAME}; dkim=pass\r\n"
    send(
        mailsystem,
        "x@sender.test",
        bob.address,
        raw_message("x@sender.test", bob.address, extra=forged),
    )
    assert "dkim=pass" not in stored_headers(bob.id)


def test_a_from_header_that_does_not_parse_is_a_dmarc_permerror(mailsystem, live_personas):
    """Python's own header parser raises IndexError on "From: <"; the message still gets
    a decision (delivered, dmarc=permerror: no author domain), not a 451 for ever."""
    bob = live_personas["bob"]
    raw = b"From: <\r\nTo: bob\r\nSubject: odd\r\n\r\nbody\r\n"
    send(mailsystem, "a@remote.test", bob.address, raw)
    assert "dmarc=permerror" in stored_headers(bob.id)
