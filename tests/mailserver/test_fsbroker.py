"""The embedded broker (mailhost.fsbroker) never shows a worker a message file before the
file is whole, delivers every message while several publishers write and a worker polls,
and leaves no partial files behind, nor any file outside its folders.

kombu's own transport creates the file under the name a worker takes, then writes it; a
worker that came at that moment read it empty and died (seen under bench/smtp_load.py).
The first test stops the writer mid-write and looks, so it does not depend on timing."""

from __future__ import annotations

import threading

from kombu import Connection, Exchange, Queue

import mailhost.fsbroker

# Each test has a queue and exchange of its own: kombu remembers bindings per process, and
# each test keeps its exchange table in a folder of its own.
PUBLISHERS = 4
PER_PUBLISHER = 100


def test_no_message_file_is_visible_to_a_worker_until_it_is_whole(tmp_path, monkeypatch):
    seen_mid_write: list[list[str]] = []
    encode = mailhost.fsbroker.str_to_bytes

    def encode_and_look(text):  # runs after the file is opened, before it is written
        seen_mid_write.append(sorted(p.name for p in tmp_path.glob("*.tasks.msg")))
        return encode(text)

    monkeypatch.setattr(mailhost.fsbroker, "str_to_bytes", encode_and_look)
    options = {"data_folder_in": str(tmp_path), "data_folder_out": str(tmp_path)}
    with Connection(
        "filesystem://", transport="mailhost.fsbroker:Transport", transport_options=options
    ) as conn:
        queue = Queue("tasks", Exchange("tasks"), routing_key="tasks")
        conn.Producer().publish(
            {"n": 1}, exchange=queue.exchange, routing_key="tasks", declare=[queue]
        )
    assert seen_mid_write == [[]]  # nothing a worker would take, while it was written
    assert len(list(tmp_path.glob("*.tasks.msg"))) == 1  # and then the whole file


def test_it_keeps_its_exchange_table_among_the_messages_not_in_the_working_directory(
    tmp_path, monkeypatch
):
    # kombu's default is "control" in the working directory: run from the checkout, a
    # test once left control/tasks.exchange there.
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "queue"
    data.mkdir()
    options = {"data_folder_in": str(data), "data_folder_out": str(data)}
    with Connection(
        "filesystem://", transport="mailhost.fsbroker:Transport", transport_options=options
    ) as conn:
        simple = conn.SimpleQueue("bindings")
        simple.put({"n": 1})
        assert simple.get(timeout=10).payload == {"n": 1}
        simple.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["queue"]
    assert (data / "control" / "bindings.exchange").exists()


def test_messages_published_while_a_worker_polls_arrive_whole(tmp_path):
    options = {
        "data_folder_in": str(tmp_path),
        "data_folder_out": str(tmp_path),
        "polling_interval": 0,
    }
    queue = Queue("polled", Exchange("polled"), routing_key="polled")
    url, transport = "filesystem://", "mailhost.fsbroker:Transport"

    def publish(publisher: int) -> None:
        with Connection(url, transport=transport, transport_options=options) as conn:
            producer = conn.Producer()
            for n in range(PER_PUBLISHER):
                body = {"publisher": publisher, "n": n, "padding": "x" * 20_000}
                producer.publish(
                    body, exchange=queue.exchange, routing_key="polled", declare=[queue]
                )

    received: list[dict] = []
    publishers = [threading.Thread(target=publish, args=(p,)) for p in range(PUBLISHERS)]
    with Connection(url, transport=transport, transport_options=options) as conn:
        simple = conn.SimpleQueue(queue)
        for thread in publishers:
            thread.start()
        while len(received) < PUBLISHERS * PER_PUBLISHER:
            message = simple.get(timeout=10)  # a garbled file raises here instead
            received.append(message.payload)
            message.ack()
        simple.close()
    for thread in publishers:
        thread.join()
    assert sorted((m["publisher"], m["n"]) for m in received) == [
        (p, n) for p in range(PUBLISHERS) for n in range(PER_PUBLISHER)
    ]
    assert all(m["padding"] == "x" * 20_000 for m in received)
    assert not list(tmp_path.glob("*.part"))
