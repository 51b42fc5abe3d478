"""RCPT's quick check (a user's own address or a remote one, plain queries; on SQLite run
on the event loop through its read-only reader) agrees with the full check wherever it
gives a verdict, and the loop's reader can neither write nor leave a read open."""

from __future__ import annotations

import sqlite3

import pytest
from django.db import connection

from apps.accounts import services as accounts
from apps.accounts.models import Domain, User
from apps.mailstore import plainsql
from apps.mailstore.models import Account
from apps.smtp import policy
from mailhost.sqlite import loopreader

ADDRESSES = [
    "alice@example.org",  # a user's own address
    "ALICE@Example.org",
    "bob@example.org",  # disabled below
    "carol@example.org",  # over quota below
    "nobody@example.org",
    "team@example.org",  # an alias
    "alice+tag@example.org",
    "someone@quiet.test",  # a disabled domain
    "friend@remote.test",
    "no-domain",
]


@pytest.fixture
def mixed_accounts(live_personas):
    accounts.create_alias("team@example.org", ["alice@example.org", "friend@remote.test"])
    User.objects.filter(pk=live_personas["bob"].id).update(is_active=False)
    carol = live_personas["carol"].id
    User.objects.filter(pk=carol).update(quota_bytes=10)
    Account.objects.filter(user_id=carol).update(used_bytes=10)
    Domain.objects.create(name="quiet.test", is_active=False)
    return live_personas


def readers() -> list[plainsql.FetchOne]:
    found: list[plainsql.FetchOne] = [plainsql.fetch_one]
    if (reader := loopreader.for_this_thread()) is not None:
        found.append(reader.fetch_one)
    return found


@pytest.mark.parametrize("sender_id", [None, 1])
@pytest.mark.parametrize("address", ADDRESSES)
def test_the_quick_check_agrees_with_the_full_one_or_gives_no_verdict(
    mixed_accounts, address, sender_id
):
    full = policy.check_recipient(address, sender_id, relay_ok=False)
    for fetch_one in readers():
        quick = policy.check_recipient_quickly(address, sender_id, False, fetch_one)
        assert quick is None or quick == full, (address, fetch_one)
    # The common cases never need the ORM (nor, from the loop, a database thread).
    if address in ("alice@example.org", "bob@example.org", "friend@remote.test"):
        assert policy.check_recipient_quickly(address, sender_id, False, readers()[-1])


def scratch_database(path) -> sqlite3.Connection:
    """A WAL database of three rows, and a connection that writes to it."""
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)")
    writer.executemany("INSERT INTO t (name) VALUES (?)", [("a",), ("b",), ("c",)])
    return writer


def test_the_loop_reader_sees_each_commit_at_once(tmp_path):
    writer = scratch_database(tmp_path / "db.sqlite3")
    reader = loopreader.LoopReader(str(tmp_path / "db.sqlite3"))
    assert reader.fetch_one("SELECT name FROM t WHERE id = %s", [2]) == ("b",)
    writer.execute("UPDATE t SET name = 'B' WHERE id = 2")
    assert reader.fetch_one("SELECT name FROM t WHERE id = %s", [2]) == ("B",)
    assert reader.fetch_one("SELECT name FROM t WHERE id = %s", [9]) is None


def test_the_loop_reader_cannot_write_and_keeps_no_read_open(tmp_path):
    writer = scratch_database(tmp_path / "db.sqlite3")
    reader = loopreader.LoopReader(str(tmp_path / "db.sqlite3"))
    with pytest.raises(sqlite3.OperationalError, match=r"readonly|read-only|query_only"):
        reader.fetch_one("DELETE FROM t", [])
    # A query of several rows, of which fetch_one wants the first: a reader left in the
    # middle of it would stop a TRUNCATE checkpoint short (busy = 1).
    assert reader.fetch_one("SELECT id FROM t WHERE id > %s ORDER BY id", [0]) == (1,)
    writer.execute("UPDATE t SET name = 'x'")
    busy, _, _ = writer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    assert busy == 0


def test_there_is_a_loop_reader_for_a_sqlite_file_only(db):
    reader = loopreader.for_this_thread()
    assert (reader is not None) == (connection.vendor == "sqlite")
