"""The one password check: right, wrong, disabled, app passwords, the success cache."""

from __future__ import annotations

from apps.accounts import services
from apps.accounts.models import AppPassword, User


def test_the_right_password_logs_in(alice):
    assert services.check_credentials("alice@example.org", alice.password) == alice.user


def test_the_address_is_matched_without_regard_to_case(alice):
    assert services.check_credentials("ALICE@Example.org", alice.password) == alice.user


def test_a_wrong_password_or_unknown_user_is_refused(alice):
    assert services.check_credentials("alice@example.org", "nope") is None
    assert services.check_credentials("mallory@example.org", alice.password) is None
    assert services.check_credentials("", "") is None


def test_a_disabled_user_cannot_log_in_even_with_a_cached_success(alice):
    assert services.check_credentials(alice.address, alice.password)
    User.objects.filter(pk=alice.id).update(is_active=False)
    assert services.check_credentials(alice.address, alice.password) is None


def test_changing_the_password_forgets_the_cached_success(alice):
    assert services.check_credentials(alice.address, alice.password)
    user = User.objects.get(pk=alice.id)
    user.set_password("a new secret")
    user.save()
    assert services.check_credentials(alice.address, alice.password) is None
    assert services.check_credentials(alice.address, "a new secret") == user


def test_an_app_password_logs_in_and_can_be_revoked(alice):
    app = AppPassword(user=alice.user, name="phone")
    app.set_password("app-secret-1")
    app.save()
    assert services.check_credentials(alice.address, "app-secret-1") == alice.user
    app.delete()
    assert services.check_credentials(alice.address, "app-secret-1") is None


def test_repeated_failures_slow_down_then_block_a_client(alice):
    results = [services.login(alice.address, "wrong", "192.0.2.7") for _ in range(12)]
    assert all(r.user is None for r in results)
    assert results[0].delay == 0 and results[5].delay > results[3].delay
    assert results[-1].blocked
    # The right password from a blocked account is refused without being checked.
    assert services.login(alice.address, alice.password, "192.0.2.8").blocked


def test_a_success_clears_the_account_count(alice):
    for _ in range(5):
        services.login(alice.address, "wrong", "192.0.2.9")
    assert services.login(alice.address, alice.password, "192.0.2.9").user == alice.user
    assert services.login(alice.address, "wrong", "192.0.2.10").delay == 0
