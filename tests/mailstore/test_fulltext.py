"""The full-text index: what a message contributes, one row per blob kept in step with the
store's writers, and substring matching through the index on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.db import connection
from django.db.models import Q

from apps.mailstore import fulltext, services
from apps.mailstore.models import Folder, Message

RAW = (
    b"From: =?utf-8?q?J=C3=B6rg?= <joerg@example.de>\r\n"
    b"To: Alice <alice@example.org>,\r\n  Bob <bob@example.org>\r\n"
    b"Subject: Quarterly   numbers\r\n"
    b"Date: Tue, 2 Jan 2024 23:30:00 -0800\r\n"
    b"\r\n"
    b"The figures are IN.\r\nRevenue: 100% up_to plan [a*b?]\r\n"
)


def rows(*messages: services.NewMessage) -> list[tuple[str, str, str, str | None]]:
    """The index rows of these messages' blobs (other tests' committed rows may linger)."""
    keys = [m.blob_key for m in messages]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT blob_key, header, body, sent_day FROM {fulltext.TABLE}"
            f" WHERE blob_key IN ({', '.join(['%s'] * len(keys))}) ORDER BY blob_key",
            keys,
        )
        return cursor.fetchall()


def inbox_of(persona) -> int:
    return Folder.objects.get(user_id=persona.id, name="INBOX").pk


def matching(persona, condition: Callable[..., Q], *args: str) -> list[int]:
    """UIDs in the persona's INBOX that `condition(folder_id, *args)` selects."""
    folder_id = inbox_of(persona)
    messages = Message.objects.filter(folder_id=folder_id).filter(condition(folder_id, *args))
    return list(messages.order_by("uid").values_list("uid", flat=True))


def test_a_folders_first_search_indexes_header_lines_body_text_and_sent_day(alice):
    new = services.NewMessage.from_bytes(RAW)
    services.deliver(new, [alice.id])
    assert rows(new) == []  # filing never waits for the index
    assert fulltext.catch_up(inbox_of(alice)) == 1
    assert fulltext.catch_up(inbox_of(alice)) == 0
    assert rows(new) == [
        (
            new.blob_key,
            "\nfrom: jörg <joerg@example.de>"
            "\nto: alice <alice@example.org>, bob <bob@example.org>"
            "\nsubject: quarterly numbers"
            "\ndate: tue, 2 jan 2024 23:30:00 -0800\n",
            "the figures are in. revenue: 100% up_to plan [a*b?]",
            "2024-01-02",
        )
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Tue, 2 Jan 2024 23:30:00 -0800", "2024-01-02"),
        ("2 Jan 2024 00:10 +1400", "2024-01-02"),
        ("Sat, 2 Jan 99 10:00:00 GMT", "1999-01-02"),
        ("31 Feb 2024 10:00 +0000", None),
        ("next tuesday", None),
        ("", None),
        (None, None),
    ],
)
def test_sent_day_is_the_day_written_in_the_date_field(value, expected):
    assert fulltext.sent_day(value) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  Hello\r\n\tWORLD  ", "hello world"),
        ("GRÜSSE", "grüsse"),
        ("a\x00b", "a b"),
        ("", ""),
    ],
)
def test_normalise_lowers_case_and_folds_white_space(text, expected):
    assert fulltext.normalise(text) == expected


def test_one_row_serves_every_copy_until_the_last_one_goes(personas):
    alice, bob = personas["alice"], personas["bob"]
    new = services.NewMessage.from_bytes(RAW)
    services.deliver(new, [alice.id, bob.id])
    services.copy_messages(alice.id, inbox_of(alice), [(1, 1)], "Archive")
    for folder_id in fulltext.folders_behind():
        fulltext.catch_up(folder_id)
    assert len(rows(new)) == 1
    services.delete_messages(alice.id, inbox_of(alice), [1])
    services.delete_messages(bob.id, inbox_of(bob), [1])
    assert len(rows(new)) == 1  # alice's Archive copy still needs it
    services.delete_folder(alice.user, "Archive")
    assert rows(new) == []


def test_appended_mail_is_indexed_by_the_periodic_catch_up_and_a_move_keeps_it(alice):
    draft, other = (services.NewMessage.from_bytes(raw) for raw in (b"Subject: d\r\n\r\n", RAW))
    services.append(alice.user, "Drafts", draft)
    services.append_many(alice.user, "Drafts", [(other, [], None)])
    drafts = Folder.objects.get(user_id=alice.id, name="Drafts").pk
    assert drafts in fulltext.folders_behind()
    assert fulltext.catch_up(drafts) == 2
    assert drafts not in fulltext.folders_behind()
    assert len(rows(draft, other)) == 2
    services.copy_messages(alice.id, drafts, [(2, 2)], "Archive", expunge_source=True)
    assert len(rows(draft, other)) == 2


def test_index_missing_fills_in_rows_lost_below_the_folders_mark(alice):
    services.deliver(services.NewMessage.from_bytes(RAW), [alice.id])
    assert matching(alice, fulltext.body_contains, "figures") == [1]
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {fulltext.TABLE}")  # as a restore from a backup might
    assert matching(alice, fulltext.body_contains, "figures") == []
    assert fulltext.index_missing() == 1
    assert matching(alice, fulltext.body_contains, "figures") == [1]
    assert fulltext.index_missing() == 0


def test_sweep_drops_rows_no_message_refers_to(alice):
    new = services.NewMessage.from_bytes(RAW)
    services.deliver(new, [alice.id])
    fulltext.catch_up(inbox_of(alice))
    Message.objects.all().delete()  # as a cascade from a deleted user would
    assert fulltext.sweep() >= 1
    assert rows(new) == []


@pytest.mark.parametrize(
    ("needle", "found"),
    [
        ("figures", True),
        ("FIGURES ARE", True),
        ("are in. revenue", True),  # across the line break
        ("igur", True),
        ("s", True),
        ("100%", True),
        ("0% u", True),
        ("%", True),
        ("_", True),
        ("p_t", True),
        ("pto", False),  # "_" is no wildcard
        ("[a*b?]", True),
        ("a*b", True),
        ("ab", False),  # "*" is no wildcard
        ("\\", False),
        ("quarterly", False),  # header only
    ],
)
def test_body_contains_matches_substrings_literally(alice, needle, found):
    services.deliver(services.NewMessage.from_bytes(RAW), [alice.id])
    assert matching(alice, fulltext.body_contains, needle) == ([1] if found else [])


@pytest.mark.parametrize(
    ("name", "needle", "found"),
    [
        ("To", "bob", True),
        ("to", "ALICE <ALICE@", True),
        ("From", "jörg", True),
        ("From", "JÖRG", True),
        ("Subject", "quarterly numbers", True),
        ("Subject", "", True),
        ("Cc", "", False),
        ("From", "bob", False),  # in the next field
        ("Subject", "numbers.", False),
        ("Subject", "quarterly.numbers", False),  # "." is no wildcard
        ("Date", "(jan)", False),
        ("Bad Name", "x", False),
        ("Sub", "quarterly", False),  # field names match whole
    ],
)
def test_header_contains_stays_within_the_named_field(alice, name, needle, found):
    services.deliver(services.NewMessage.from_bytes(RAW), [alice.id])
    assert matching(alice, fulltext.header_contains, name, needle) == ([1] if found else [])


def test_text_contains_looks_at_header_and_body(alice):
    services.deliver(services.NewMessage.from_bytes(RAW), [alice.id])
    assert matching(alice, fulltext.text_contains, "Quarterly") == [1]
    assert matching(alice, fulltext.text_contains, "revenue") == [1]
    assert matching(alice, fulltext.text_contains, "nowhere") == []


def explain(sql: str, params: list) -> str:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL enable_seqscan = off")  # a tiny table would not bother
            cursor.execute("EXPLAIN " + sql, params)
        else:
            cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
        return "\n".join(str(row) for row in cursor.fetchall())


def plan_of(condition: Q) -> str:
    sql, params = Message.objects.filter(condition).values("uid").query.sql_with_params()
    return explain(sql, list(params))


def test_substring_searches_use_the_trigram_index(alice):
    services.deliver(services.NewMessage.from_bytes(RAW), [alice.id])
    plan = plan_of(fulltext.body_contains(inbox_of(alice), "figures"))
    if connection.vendor == "sqlite":
        assert "VIRTUAL TABLE INDEX 0:G" in plan  # FTS5 takes the GLOB constraint
    else:
        assert f"{fulltext.TABLE}_body_trgm" in plan


def test_needles_too_short_for_the_index_read_only_the_folders_rows(alice):
    services.deliver(services.NewMessage.from_bytes(RAW), [alice.id])
    plan = plan_of(fulltext.body_contains(inbox_of(alice), "fi"))
    assert "VIRTUAL TABLE" not in plan and "_trgm" not in plan
    assert matching(alice, fulltext.body_contains, "fi") == [1]


def test_a_backlog_is_indexed_in_chunks_and_every_message_is_found(alice, monkeypatch):
    monkeypatch.setattr(fulltext, "CATCH_UP_CHUNK", 7)
    for n in range(20):
        raw = f"Subject: report {n}\r\n\r\nquarterly figures number {n}\r\n".encode()
        services.deliver(services.NewMessage.from_bytes(raw), [alice.id])
    assert matching(alice, fulltext.body_contains, "quarterly figures") == list(range(1, 21))
    assert matching(alice, fulltext.header_contains, "subject", "report 1") == [2, *range(11, 21)]


def test_the_inbound_pipeline_indexes_what_it_files(alice):
    from apps.mailstore import inbound
    from apps.mailstore.models import Incoming

    new = services.NewMessage.from_bytes(RAW)
    row = Incoming.objects.create(
        blob_key=new.blob_key,
        size=new.size,
        source="mx",
        recipients=[{"address": alice.address, "user_ids": [alice.id]}],
    )
    assert inbound.process(row.pk) == 1
    assert [r[0] for r in rows(new)] == [new.blob_key]
