"""Bad clients: garbage, overlong lines and floods get errors or a closed connection, and
everyone else is still served."""

from __future__ import annotations

import smtplib
import socket
import threading
import time

from tests.mailclient import raw_message, wait_for_messages


def flood(port: int, payloads: list[bytes], results: list) -> None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            for payload in payloads:
                sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
            received = b""
            while chunk := sock.recv(65536):
                received += chunk
            results.append(received)
    except OSError as error:  # the server may close on us mid-flood: that is allowed
        results.append(error)


def test_garbage_and_overlong_lines_get_errors_then_a_close(mailserver, live_personas):
    results: list = []
    payloads = [
        b"\x00\xff garbage\r\n" * 5,
        b"HELO " + b"a" * 100_000 + b"\r\n",
        b"MAIL FROM:<" + b"x" * 5000 + b"@y>\r\n",
        b"NONSENSE\r\n" * 20,
    ]
    flood(mailserver.port("smtp"), payloads, results)
    [received] = results
    assert isinstance(received, bytes)
    assert b"500 " in received
    assert b"421 4.7.0 Too many errors" in received


def test_one_client_floods_while_another_still_delivers(mailsystem, live_personas):
    bob = live_personas["bob"]
    results: list = []
    flooders = [
        threading.Thread(
            target=flood,
            args=(
                mailsystem.port("smtp"),
                [b"X" * 1_000_000, b"\r\n", b"EHLO x\r\n" * 2000],
                results,
            ),
        )
        for _ in range(3)
    ]
    for thread in flooders:
        thread.start()
    with smtplib.SMTP("127.0.0.1", mailsystem.port("smtp"), timeout=30) as client:
        client.sendmail(
            "a@remote.test",
            [bob.address],
            raw_message("a@remote.test", bob.address, subject="still here"),
        )
    for thread in flooders:
        thread.join(60)
    assert wait_for_messages(bob.id, 1)[0].subject == "still here"
    assert len(results) == 3


def test_too_many_connections_from_one_ip_get_421(mailserver, live_personas, settings):
    sockets = []
    try:
        for _ in range(25):
            sockets.append(socket.create_connection(("127.0.0.1", mailserver.port("smtp"))))
        greetings = [s.recv(200) for s in sockets]
    finally:
        for s in sockets:
            s.close()
    assert sum(g.startswith(b"220") for g in greetings) == 20
    assert all(g.startswith(b"421") for g in greetings[20:])


def test_a_client_that_stops_sending_mid_data_has_acknowledged_nothing(mailserver, live_personas):
    from apps.mailstore.models import Incoming

    bob = live_personas["bob"]
    with socket.create_connection(("127.0.0.1", mailserver.port("smtp")), timeout=30) as sock:
        sock.recv(200)
        sock.sendall(
            b"EHLO x\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<%s>\r\nDATA\r\n"
            b"Subject: cut\r\n\r\nhalf a mess" % bob.address.encode()
        )
    assert not Incoming.objects.exists()


def test_an_idle_session_is_closed_and_a_busy_one_is_not(mailserver, monkeypatch):
    """RFC 5321 §4.5.3.2.7: a server may close a session idle past its timeout. Every
    command pushes the deadline back, so a client that keeps talking stays connected."""
    from apps.smtp import replies

    monkeypatch.setattr(replies, "COMMAND_TIMEOUT", 0.6)
    port = mailserver.port("smtp")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as busy:
        reader = busy.makefile("rb")
        reader.readline()  # greeting
        started = time.monotonic()
        while True:  # three timeouts' worth of NOOPs, 0.2 s apart
            busy.sendall(b"NOOP\r\n")
            assert reader.readline().startswith(b"250")
            last_reply = time.monotonic()
            if last_reply - started >= 2.0:
                break
            time.sleep(0.2)
        assert reader.readline().startswith(b"421 4.4.2 ")  # now idle: told, then closed
        assert reader.readline() == b""
        # 0.6 s after the server read the last NOOP, a moment before its reply came.
        assert 0.5 < time.monotonic() - last_reply < 5
