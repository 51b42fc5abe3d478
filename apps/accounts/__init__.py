"""Domains, users, aliases, quotas and roles; the one place that checks a password."""
