"""Data steps of the store's migrations, run against a database at the migration before."""

from __future__ import annotations

from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

BEFORE_RECENT = [("mailstore", "0009_stored_blob")]
WITH_RECENT = [("mailstore", "0010_folder_recent_uid")]


def _migrate(targets=None) -> None:
    """To `targets`, or (None) to the latest migrations, where every other test runs."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets or executor.loader.graph.leaf_nodes())


def test_existing_folders_start_with_nothing_recent(transactional_db, live_personas):
    """RFC 3501 §2.3.2: sessions before the upgrade were told "0 RECENT", so the mail
    already there is new to nobody; mail after it is recent to the next session."""
    alice = live_personas["alice"]
    _migrate(BEFORE_RECENT)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO mailstore_folder (user_id, name, uidvalidity, uidnext,"
                " highestmodseq, special_use, subscribed, changed_at, indexed_uid)"
                " VALUES (%s, 'Old', 7, 42, 1, '', %s, %s, 0)",
                [alice.id, True, timezone.now()],
            )
        _migrate(WITH_RECENT)
        with connection.cursor() as cursor:
            cursor.execute("SELECT recent_uid FROM mailstore_folder WHERE name = 'Old'")
            assert cursor.fetchone() == (42,)
    finally:
        _migrate()
