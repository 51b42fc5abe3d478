"""SMTP as RFC 5321 and its extensions describe it: pipelining, BDAT, SMTPUTF8, 8-bit,
big messages, and smuggling attempts."""

from __future__ import annotations

import gc
import smtplib
import socket

import pytest

from apps.mailstore.blobs import blob_store
from tests.mailclient import raw_message, wait_for_messages


def talk(port: int, lines: list[bytes], expect: int, timeout: float = 30) -> list[bytes]:
    """Send raw bytes in one go and read until `expect` replies have come back."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        reader = sock.makefile("rb")
        replies = [reader.readline()]  # greeting
        sock.sendall(b"".join(lines))
        while len(replies) < expect + 1:
            line = reader.readline()
            if not line:
                break
            if line[3:4] == b"-":
                continue  # multi-line reply: keep its last line only
            replies.append(line)
        return replies[1:]


def stored_bytes(message) -> bytes:
    return blob_store().read(message.blob_key)


def test_a_message_to_a_local_user_arrives_byte_exact_with_a_received_header(
    mailsystem, live_personas
):
    bob = live_personas["bob"]
    raw = raw_message("sender@remote.test", bob.address, body="Line one\r\n\r\n..Dot line\r\n")
    with smtplib.SMTP("127.0.0.1", mailsystem.port("smtp"), timeout=30) as client:
        client.sendmail("sender@remote.test", [bob.address], raw)
    [message] = wait_for_messages(bob.id, 1)
    stored = stored_bytes(message)
    assert stored.startswith(b"Received: from ")
    assert stored.endswith(raw)  # smtplib dot-stuffs ".." on the wire; we undo it exactly


def test_pipelined_commands_get_one_reply_each_in_order(mailsystem, live_personas):
    bob = live_personas["bob"]
    replies = talk(
        mailsystem.port("smtp"),
        [
            b"EHLO client.test\r\n",
            b"MAIL FROM:<a@remote.test>\r\nRCPT TO:<nobody@example.org>\r\n"
            b"RCPT TO:<" + bob.address.encode() + b">\r\nDATA\r\n",
            b"Subject: pipelined\r\n\r\nbody\r\n.\r\nQUIT\r\n",
        ],
        expect=7,
    )
    codes = [r[:3] for r in replies]
    assert codes == [b"250", b"250", b"550", b"250", b"354", b"250", b"221"]
    assert wait_for_messages(bob.id, 1)[0].subject == "pipelined"


def test_replies_to_a_pipelined_group_come_back_in_one_write(mailsystem, live_personas):
    """RFC 2920 §3.2: the server may hold replies while the client's next commands are
    already in. The first read after sending MAIL, RCPT and DATA at once gets all three
    replies (sent one by one, it would get the 250 to MAIL before RCPT was even checked)."""
    bob = live_personas["bob"]
    with socket.create_connection(("127.0.0.1", mailsystem.port("smtp")), timeout=30) as sock:
        reader = sock.makefile("rb")
        reader.readline()  # greeting
        sock.sendall(b"EHLO client.test\r\n")
        ehlo = sock.recv(65536)  # the whole multi-line EHLO reply is one write too
        assert ehlo.endswith(b"250 HELP\r\n") and ehlo.count(b"\r\n") > 5
        sock.sendall(
            b"MAIL FROM:<a@remote.test>\r\nRCPT TO:<" + bob.address.encode() + b">\r\nDATA\r\n"
        )
        first = sock.recv(65536)
        assert [line[:3] for line in first.splitlines()] == [b"250", b"250", b"354"]
        sock.sendall(b"Subject: grouped\r\n\r\nbody\r\n.\r\nQUIT\r\n")
        assert sock.recv(65536).startswith(b"250 ")
    assert wait_for_messages(bob.id, 1)[0].subject == "grouped"


def test_bdat_in_several_chunks_makes_one_message(mailsystem, live_personas):
    bob = live_personas["bob"]
    parts = [b"Subject: chunked\r\n", b"\r\nfirst half, ", b"second half\r\n.\r\n"]
    lines = [
        b"EHLO client.test\r\n",
        b"MAIL FROM:<a@remote.test>\r\n",
        b"RCPT TO:<" + bob.address.encode() + b">\r\n",
    ]
    for n, part in enumerate(parts):
        last = b" LAST" if n == len(parts) - 1 else b""
        lines.append(b"BDAT %d%s\r\n" % (len(part), last) + part)
    replies = talk(mailsystem.port("smtp"), lines, expect=6)
    assert [r[:3] for r in replies] == [b"250"] * 6
    [message] = wait_for_messages(bob.id, 1)
    # BDAT data is not dot-stuffed: the final ".\r\n" is part of the message.
    assert stored_bytes(message).endswith(b"".join(parts))


def test_bdat_without_recipients_is_refused_but_its_data_is_consumed(mailsystem, live_personas):
    replies = talk(
        mailsystem.port("smtp"),
        [
            b"EHLO client.test\r\n",
            b"BDAT 12 LAST\r\nNOOP\r\nNOOP\r\n",
            b"NOOP\r\n",
        ],
        expect=3,
    )
    assert [r[:3] for r in replies] == [b"250", b"503", b"250"]


@pytest.mark.parametrize("reset", [b"EHLO again.test", b"HELO again.test", b"RSET"])
def test_a_bdat_transaction_cut_short_by_a_reset_frees_its_chunks(mailserver, live_personas, reset):
    """RFC 3030 §4: RSET ends a BDAT transaction; RFC 5321 §4.1.4: so do EHLO and HELO.
    The chunks held so far are freed then, not left to the garbage collector (whose
    ResourceWarning for an unclosed spool fails this test under filterwarnings=error)."""
    bob = live_personas["bob"]
    replies = talk(
        mailserver.port("smtp"),
        [
            b"EHLO client.test\r\nMAIL FROM:<a@remote.test>\r\n",
            b"RCPT TO:<" + bob.address.encode() + b">\r\nBDAT 5\r\nfirst",
            reset + b"\r\nQUIT\r\n",
        ],
        expect=6,
    )
    assert [r[:3] for r in replies] == [b"250", b"250", b"250", b"250", b"250", b"221"]
    gc.collect()


def test_an_smtputf8_address_and_8bit_body_are_delivered(mailsystem, live_personas):
    from apps.accounts.services import create_alias

    bob = live_personas["bob"]
    create_alias("josé@example.org", [bob.address])
    raw = (
        "From: Zoë <zoë@remote.test>\r\nTo: josé@example.org\r\nSubject: héllo\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\nÇa va très bien ✓\r\n"
    ).encode()
    with smtplib.SMTP("127.0.0.1", mailsystem.port("smtp"), timeout=30) as client:
        client.ehlo("client.test")
        assert client.has_extn("smtputf8")
        client.sendmail(
            "zoë@remote.test", ["josé@example.org"], raw, mail_options=["SMTPUTF8", "BODY=8BITMIME"]
        )
    [message] = wait_for_messages(bob.id, 1)
    assert stored_bytes(message).endswith(raw)
    assert message.subject == "héllo"


def test_a_30_mb_message_is_accepted_and_stored_whole(mailsystem, live_personas):
    bob = live_personas["bob"]
    line = b"x" * 76 + b"\r\n"
    body = line * (30 * 1024 * 1024 // len(line))
    raw = b"Subject: big\r\n\r\n" + body
    with smtplib.SMTP("127.0.0.1", mailsystem.port("smtp"), timeout=120) as client:
        client.sendmail("a@remote.test", [bob.address], raw)
    [message] = wait_for_messages(bob.id, 1, timeout=120)
    assert message.size > 30 * 1024 * 1024 - 100
    assert stored_bytes(message).endswith(raw)


def test_a_message_over_the_size_limit_is_refused_at_mail_or_at_end_of_data(
    mailsystem, live_personas, settings
):
    settings.MAX_MESSAGE_SIZE = 10_000
    bob = live_personas["bob"]
    big = b"Subject: big\r\n\r\n" + b"y" * 20_000
    with smtplib.SMTP("127.0.0.1", mailsystem.port("smtp"), timeout=30) as client:
        # smtplib declares SIZE= (RFC 1870), so the refusal comes at MAIL FROM...
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            client.sendmail("a@remote.test", [bob.address], big)
        assert refused.value.smtp_code == 552
        # ...and without a declared size, after the data has been read.
        client.rset()
        client.mail("a@remote.test")
        client.rcpt(bob.address)
        code, text = client.data(big)
    assert code == 552 and b"5.3.4" in text


@pytest.mark.parametrize("smuggled", [b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r.\n"])
def test_a_bare_lf_or_cr_dot_never_ends_the_message(mailsystem, live_personas, smuggled):
    bob = live_personas["bob"]
    hidden = (
        b"MAIL FROM:<admin@example.org>\r\nRCPT TO:<"
        + bob.address.encode()
        + b">\r\nDATA\r\nSubject: smuggled\r\n\r\nevil"
    )
    replies = talk(
        mailsystem.port("smtp"),
        [
            b"EHLO client.test\r\nMAIL FROM:<a@remote.test>\r\n",
            b"RCPT TO:<" + bob.address.encode() + b">\r\nDATA\r\n",
            b"Subject: outer\r\n\r\nstart" + smuggled + hidden + b"\r\n.\r\nQUIT\r\n",
        ],
        expect=6,
    )
    assert [r[:3] for r in replies] == [b"250", b"250", b"250", b"354", b"250", b"221"], replies
    [message] = wait_for_messages(bob.id, 1)
    assert message.subject == "outer"
    assert hidden in stored_bytes(message)  # carried as body text, never run as commands


def test_unknown_local_user_is_refused_with_5_1_1(mailserver, live_personas):
    with smtplib.SMTP("127.0.0.1", mailserver.port("smtp"), timeout=30) as client:
        client.ehlo("client.test")
        client.mail("a@remote.test")
        code, text = client.rcpt("nobody@example.org")
    assert code == 550 and b"5.1.1" in text


def test_a_full_mailbox_gets_452_4_2_2(mailserver, live_personas):
    from apps.accounts.models import User

    bob = live_personas["bob"]
    User.objects.filter(pk=bob.id).update(quota_bytes=1)
    from apps.mailstore.models import Account

    Account.objects.filter(user_id=bob.id).update(used_bytes=10)
    with smtplib.SMTP("127.0.0.1", mailserver.port("smtp"), timeout=30) as client:
        client.ehlo("client.test")
        client.mail("a@remote.test")
        code, text = client.rcpt(bob.address)
    assert code == 452 and b"4.2.2" in text


def test_rcpt_answers_follow_account_changes_within_one_session(mailserver, live_personas):
    from apps.accounts.models import User
    from apps.mailstore.models import Account

    bob = live_personas["bob"]
    with smtplib.SMTP("127.0.0.1", mailserver.port("smtp"), timeout=30) as client:
        client.ehlo("client.test")
        client.mail("a@remote.test")
        assert client.rcpt(bob.address)[0] == 250
        User.objects.filter(pk=bob.id).update(is_active=False)
        code, text = client.rcpt(bob.address)
        assert code == 550 and b"5.1.1" in text
        User.objects.filter(pk=bob.id).update(is_active=True, quota_bytes=1)
        Account.objects.filter(user_id=bob.id).update(used_bytes=10)
        code, text = client.rcpt(bob.address)
        assert code == 452 and b"4.2.2" in text
        User.objects.filter(pk=bob.id).update(quota_bytes=0)
        assert client.rcpt(bob.address)[0] == 250


def test_too_many_recipients_get_452_4_5_3(mailserver, live_personas):
    bob = live_personas["bob"]
    with smtplib.SMTP("127.0.0.1", mailserver.port("smtp"), timeout=30) as client:
        client.ehlo("client.test")
        client.mail("a@remote.test")
        codes = [client.rcpt(bob.address.replace("@", f"+{n}@"))[0] for n in range(101)]
        assert codes[:100] == [250] * 100
        code, text = client.rcpt(bob.address)
    assert codes[100] == 452 and code == 452 and b"4.5.3" in text


def test_dsn_parameters_are_accepted_and_kept(mailserver, live_personas):
    from apps.mailstore.models import Incoming

    bob = live_personas["bob"]
    with smtplib.SMTP("127.0.0.1", mailserver.port("smtp"), timeout=30) as client:
        client.ehlo("client.test")
        assert client.has_extn("dsn")
        client.sendmail(
            "a@remote.test",
            [bob.address],
            raw_message("a@remote.test", bob.address),
            mail_options=["RET=HDRS", "ENVID=abc+2Bdef"],
            rcpt_options=["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;bob@example.org"],
        )
    incoming = Incoming.objects.get()
    assert (incoming.ret, incoming.envid) == ("HDRS", "abc+def")
    assert incoming.recipients[0]["notify"] == ["SUCCESS", "FAILURE"]
    assert incoming.recipients[0]["orcpt"] == "rfc822;bob@example.org"


def test_addresses_that_are_not_utf8_get_553_and_the_session_goes_on(mailserver, live_personas):
    """RFC 6531 §3.3: addresses are UTF-8. Other bytes get a clear 553 5.1.3 (they once
    reached the database layer and came back as a 500 naming a Python exception)."""
    bob = live_personas["bob"]
    replies = talk(
        mailserver.port("smtp"),
        [
            b"EHLO client.test\r\n",
            b"MAIL FROM:<\xff@remote.test> SMTPUTF8\r\n",
            b"MAIL FROM:<a@remote.test> SMTPUTF8\r\n",
            b"RCPT TO:<\xed\xb3\xbf\xfe@example.org>\r\n",
            b"RCPT TO:<" + bob.address.encode() + b">\r\n",
            b"QUIT\r\n",
        ],
        expect=6,
    )
    assert [r[:9] for r in replies] == [
        b"250 HELP\r",
        b"553 5.1.3",
        b"250 2.0.0",
        b"553 5.1.3",
        b"250 2.0.0",
        b"221 Bye\r\n",
    ]


def test_dsn_xtext_that_is_not_printable_ascii_gets_555_and_the_session_goes_on(
    mailserver, live_personas
):
    """RFC 3461 §4: ENVID and ORCPT are xtext, printable US-ASCII with "+HH" escapes.
    Other bytes are a bad parameter (outside fuzzing found one reaching a traceback)."""
    bob = live_personas["bob"]
    replies = talk(
        mailserver.port("smtp"),
        [
            b"EHLO client.test\r\n",
            b"MAIL FROM:<a@remote.test> ENVID=x\x8f+41\r\n",
            b"MAIL FROM:<a@remote.test> ENVID=ok+2Bid\r\n",
            b"RCPT TO:<" + bob.address.encode() + b"> ORCPT=rfc822;b\xc3\xa9b@example.org\r\n",
            b"RCPT TO:<" + bob.address.encode() + b"> ORCPT=rfc822;bob+40example.org\r\n",
            b"QUIT\r\n",
        ],
        expect=6,
    )
    assert [r[:9] for r in replies] == [
        b"250 HELP\r",
        b"555 5.5.4",
        b"250 2.0.0",
        b"555 5.5.4",
        b"250 2.0.0",
        b"221 Bye\r\n",
    ]


def test_a_new_ehlo_discards_a_bdat_body_in_progress(mailsystem, live_personas):
    """RFC 3030 §4 with RFC 5321 §4.1.4: EHLO resets the transaction, so the chunks
    received so far make no message; the next transaction starts clean."""
    bob = live_personas["bob"]
    rcpt = b"RCPT TO:<" + bob.address.encode() + b">\r\n"
    replies = talk(
        mailsystem.port("smtp"),
        [
            b"EHLO client.test\r\nMAIL FROM:<a@remote.test>\r\n" + rcpt,
            b"BDAT 7\r\nSubject",
            b"EHLO client.test\r\nMAIL FROM:<a@remote.test>\r\n" + rcpt,
            b"BDAT 14 LAST\r\nSubject: b\r\n\r\n",
            b"QUIT\r\n",
        ],
        expect=9,
    )
    assert [r[:3] for r in replies] == [b"250"] * 8 + [b"221"]
    [message] = wait_for_messages(bob.id, 1)
    assert stored_bytes(message).endswith(b"\r\nSubject: b\r\n\r\n")
