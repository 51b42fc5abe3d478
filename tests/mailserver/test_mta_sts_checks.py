"""System checks for the MTA-STS settings (MAILHOST_MTA_STS_*)."""

from __future__ import annotations

import pytest
from django.core import checks


def problem_ids() -> list[str | None]:
    return [problem.id for problem in checks.run_checks()]


@pytest.mark.parametrize(("port", "timeout"), [(0, 30), (70000, 30), (443, 0)])
def test_a_bad_policy_fetch_port_or_timeout_fails_the_system_check(settings, port, timeout):
    settings.MTA_STS_FETCH_PORT = port
    settings.MTA_STS_FETCH_TIMEOUT = timeout
    assert "mailhost.E011" in problem_ids()


def test_an_unknown_mta_sts_mode_fails_the_system_check(settings):
    settings.MTA_STS_MODE = "strict"
    assert "mailhost.E012" in problem_ids()


@pytest.mark.parametrize("max_age", [0, 31557601])
def test_a_max_age_outside_rfc_8461_fails_the_system_check(settings, max_age):
    settings.MTA_STS_MAX_AGE = max_age  # RFC 8461 §3.2: at most 31557600
    assert "mailhost.E013" in problem_ids()
