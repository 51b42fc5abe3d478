"""Big transfers over IMAPS from many clients at once arrive whole: every TLS connection of
the server reads the socket through one shared buffer (apps/mailserver/tlsbuffers.py), so
data from one connection must never end up in another's stream."""

from __future__ import annotations

import hashlib
import threading

from tests.imap.conftest import message

CLIENTS = 8
SIZE = 300_000  # many TLS records, many socket reads each


def _body(n: int) -> str:
    line = hashlib.sha256(str(n).encode()).hexdigest() + "\r\n"
    return line * (SIZE // len(line))


def test_concurrent_imaps_appends_and_fetches_keep_each_message_whole(imap, alice):
    """RFC 9051 §6.3.12 APPEND and §6.4.5 FETCH BODY[], eight clients at once over TLS."""
    sent = {n: message(n, body=_body(n)) for n in range(CLIENTS)}
    fetched: dict[int, bytes] = {}
    errors: list[BaseException] = []
    clients = [imap.login(alice) for _ in range(CLIENTS)]
    start = threading.Barrier(CLIENTS)

    def one_client(n: int) -> None:
        try:
            client = clients[n]
            start.wait(10)
            result, data = client.append("INBOX", None, None, sent[n])
            assert result == "OK", data
            uid = data[0].split(b"APPENDUID ")[1].split(b"]")[0].split()[1].decode()
            client.select("INBOX", readonly=True)
            result, data = client.uid("FETCH", uid, "(BODY.PEEK[])")
            assert result == "OK", data
            fetched[n] = data[0][1]
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=one_client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert fetched == sent
