"""The pure command parser: keywords, argument shapes, message numbers, SASL PLAIN."""

from __future__ import annotations

import base64

import pytest

from apps.pop3 import replies
from apps.pop3.parser import Command, CommandError, decode_sasl_plain, parse_command


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"STAT\r\n", Command("STAT")),
        (b"stat\r\n", Command("STAT")),
        (b"LIST\r\n", Command("LIST")),
        (b"LIST 2\r\n", Command("LIST", ("2",), (2,))),
        (b"RETR 10\n", Command("RETR", ("10",), (10,))),
        (b"TOP 1 0\r\n", Command("TOP", ("1", "0"), (1, 0))),
        (b"UIDL 3\r\n", Command("UIDL", ("3",), (3,))),
        (b"AUTH PLAIN\r\n", Command("AUTH", ("PLAIN",))),
        (b"AUTH PLAIN AGFsaWNl\r\n", Command("AUTH", ("PLAIN", "AGFsaWNl"))),
        (b"CAPA\r\n", Command("CAPA")),
    ],
)
def test_it_parses_commands_and_their_arguments(line, expected):
    assert parse_command(line) == expected


def test_user_and_pass_keep_the_rest_of_the_line_with_its_spaces():
    command = parse_command(b"PASS correct horse  battery staple \r\n")
    assert command.text == "correct horse  battery staple "
    assert parse_command(b"USER alice@example.org\r\n").text == "alice@example.org"


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        (b"\r\n", replies.UNKNOWN_COMMAND),
        (b"HELO there\r\n", replies.UNKNOWN_COMMAND),
        (b"\x00\xff\xfe garbage\r\n", replies.UNKNOWN_COMMAND),
        (b"STAT 1\r\n", replies.BAD_SYNTAX),
        (b"RETR\r\n", replies.BAD_SYNTAX),
        (b"RETR one\r\n", replies.BAD_SYNTAX),
        (b"RETR -1\r\n", replies.BAD_SYNTAX),
        (b"RETR 1 2\r\n", replies.BAD_SYNTAX),
        (b"RETR \xd9\xa3\r\n", replies.BAD_SYNTAX),  # an Arabic-Indic digit is no digit here
        (b"RETR 99999999999999999999\r\n", replies.BAD_SYNTAX),
        (b"RETR 0\r\n", replies.NO_SUCH_MESSAGE),
        (b"TOP 1\r\n", replies.BAD_SYNTAX),
        (b"TOP 1 x\r\n", replies.BAD_SYNTAX),
        (b"USER\r\n", replies.BAD_SYNTAX),
        (b"PASS\r\n", replies.BAD_SYNTAX),
        (b"AUTH PLAIN a b\r\n", replies.BAD_SYNTAX),
    ],
)
def test_it_refuses_malformed_lines_with_the_reply_to_send(line, reply):
    with pytest.raises(CommandError) as error:
        parse_command(line)
    assert error.value.reply == reply


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def test_sasl_plain_gives_authzid_login_and_password():
    response = _b64(b"\0alice@example.org\0pass word")
    assert decode_sasl_plain(response) == ("", "alice@example.org", "pass word")


@pytest.mark.parametrize(
    ("response", "reply"),
    [
        ("not base64!", replies.AUTH_BAD_BASE64),
        ("=", replies.AUTH_FAILED),
        (_b64(b"only-two\0parts"), replies.AUTH_FAILED),
        ("ünïcode", replies.AUTH_BAD_BASE64),
    ],
)
def test_sasl_plain_refuses_what_it_cannot_decode(response, reply):
    with pytest.raises(CommandError) as error:
        decode_sasl_plain(response)
    assert error.value.reply == reply
