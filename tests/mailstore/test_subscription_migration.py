"""Migration 0011: subscriptions move from a column on folders to a table of names, and
an upgrade keeps every subscription it had (a downgrade, those that have a folder)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("mailstore", "0010_folder_recent_uid")]
AFTER = [("mailstore", "0011_subscription")]


def _migrate(targets):
    """Migrate the test database to `targets`; the models as they are there."""
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture
def alice_id(live_personas):
    """Alice's id, with the schema put back to the latest state afterwards (SQLite alters
    tables only outside a transaction, hence live personas)."""
    yield live_personas["alice"].id
    executor = MigrationExecutor(connection)
    _migrate(executor.loader.graph.leaf_nodes("mailstore"))


def test_an_upgrade_keeps_subscribed_folders_subscribed(alice_id):
    Folder = _migrate(BEFORE).get_model("mailstore", "Folder")
    Folder.objects.filter(user_id=alice_id, name="Junk").update(subscribed=False)
    Subscription = _migrate(AFTER).get_model("mailstore", "Subscription")
    names = set(Subscription.objects.filter(user_id=alice_id).values_list("name", flat=True))
    assert names == {"INBOX", "Drafts", "Sent", "Trash", "Archive"}


def test_a_downgrade_marks_the_folders_whose_names_are_subscribed(alice_id):
    Subscription = _migrate(AFTER).get_model("mailstore", "Subscription")
    Subscription.objects.filter(user_id=alice_id, name="Junk").delete()
    Subscription.objects.create(user_id=alice_id, name="No folder")
    Folder = _migrate(BEFORE).get_model("mailstore", "Folder")
    subscribed = Folder.objects.filter(user_id=alice_id, subscribed=True)
    assert set(subscribed.values_list("name", flat=True)) == {
        "INBOX",
        "Drafts",
        "Sent",
        "Trash",
        "Archive",
    }
