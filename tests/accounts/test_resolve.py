"""Who an address reaches: users, aliases, catch-all, plus-addressing, disabled accounts."""

from __future__ import annotations

import pytest

from apps.accounts import services
from apps.accounts.models import Domain, User


def ids(*personas) -> list[int]:
    return [p.id for p in personas]


def test_a_user_address_reaches_that_user(personas):
    assert services.resolve("alice@example.org").user_ids == ids(personas["alice"])


def test_addresses_are_matched_without_regard_to_case(personas):
    assert services.resolve("Alice@EXAMPLE.org").user_ids == ids(personas["alice"])


def test_plus_addressing_reaches_the_user_without_the_tag(personas):
    assert services.resolve("bob+newsletters@example.org").user_ids == ids(personas["bob"])


def test_an_unknown_address_reaches_nobody(personas):
    assert not services.resolve("nobody@example.org")


def test_a_foreign_domain_is_not_ours(personas):
    assert not services.resolve("alice@elsewhere.test")
    assert not services.is_local_domain("elsewhere.test")
    assert services.is_local_domain("EXAMPLE.org")


def test_an_alias_reaches_every_local_and_remote_target(personas):
    services.create_alias(
        "team@example.org", ["alice@example.org", "bob@example.org", "friend@remote.test"]
    )
    found = services.resolve("team@example.org")
    assert found.user_ids == ids(personas["alice"], personas["bob"])
    assert found.external == ["friend@remote.test"]


def test_an_alias_of_an_alias_is_followed_and_loops_end(personas):
    services.create_alias("a@example.org", ["b@example.org"])
    services.create_alias("b@example.org", ["a@example.org", "carol@example.org"])
    assert services.resolve("a@example.org").user_ids == ids(personas["carol"])


def test_a_user_beats_a_catch_all_and_a_catch_all_takes_the_rest(personas):
    Domain.objects.filter(name="example.org").update(catch_all="carol@example.org")
    assert services.resolve("alice@example.org").user_ids == ids(personas["alice"])
    assert services.resolve("whatever@example.org").user_ids == ids(personas["carol"])


@pytest.mark.parametrize("address", ["alice@example.org", "alice+tag@example.org"])
def test_a_disabled_user_receives_nothing_even_with_a_catch_all(personas, address):
    Domain.objects.filter(name="example.org").update(catch_all="carol@example.org")
    User.objects.filter(email="alice@example.org").update(is_active=False)
    assert not services.resolve(address)


def test_a_disabled_domain_receives_nothing(personas):
    Domain.objects.filter(name="example.org").update(is_active=False)
    assert not services.resolve("alice@example.org")
    assert services.is_local_domain("example.org")  # still ours: never relayed


def test_a_disabled_alias_reaches_nobody(personas):
    alias = services.create_alias("old@example.org", ["alice@example.org"])
    alias.is_active = False
    alias.save()
    assert not services.resolve("old@example.org")


LOOKUP_CASES = [
    "alice@example.org",
    "Alice@EXAMPLE.org.",
    "bob+newsletters@example.org",
    "nobody@example.org",
    "team@example.org",
    "alice@elsewhere.test",
    "not-an-address",
]


@pytest.mark.parametrize("state", ["as made", "user disabled", "domain disabled", "catch-all"])
def test_the_one_query_lookup_agrees_with_resolve(personas, state):
    """RCPT asks `lookup` first; whenever it answers, it must say what `resolve` says."""
    services.create_alias("team@example.org", ["bob@example.org"])
    if state == "user disabled":
        User.objects.filter(email="alice@example.org").update(is_active=False)
    elif state == "domain disabled":
        Domain.objects.filter(name="example.org").update(is_active=False)
    elif state == "catch-all":
        Domain.objects.filter(name="example.org").update(catch_all="carol@example.org")
    for address in LOOKUP_CASES:
        found = services.lookup(address)
        assert found.is_local == services.is_local_domain(address.rpartition("@")[2])
        if found.recipients is not None:
            assert found.recipients == services.resolve(address), address
    assert services.lookup("alice@example.org").recipients is not None  # the fast path
