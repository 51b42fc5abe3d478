"""System checks for the ACME settings: a typo must stop the server, not leave it without
certificates."""

from __future__ import annotations

import pytest
from django.core.checks import run_checks


@pytest.mark.parametrize(
    ("name", "value", "check_id"),
    [
        ("ACME", "sometimes", "mailhost.E005"),
        # RFC 8555 §6.1: ACME runs over HTTPS only.
        ("ACME_DIRECTORY", "http://acme.example/dir", "mailhost.E006"),
        ("ACME_CA_BUNDLE", "/nonexistent/ca.pem", "mailhost.E007"),
        ("ACME_EMAIL", "postmaster", "mailhost.E008"),
    ],
)
def test_it_reports_a_bad_acme_setting_by_its_id(settings, name, value, check_id):
    setattr(settings, name, value)
    assert check_id in {message.id for message in run_checks()}


def test_the_default_acme_settings_pass(settings):
    settings.ACME = "auto"
    assert not [m for m in run_checks() if m.id and m.id.startswith("mailhost.E")]
