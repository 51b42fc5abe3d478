"""Plain SQL for the statements that run for every message.

`Model.objects.create(**row)` builds a model instance and compiles an ORM query each time;
on the delivery and SMTP paths that cost more than the INSERT itself. The INSERT here is
built once per model and database vendor; values are prepared by the model's own fields,
so what lands is what the ORM would have written. Queries that read one row take a
`FetchOne`, so the same SQL can run on this thread's connection or on the event loop's
read-only one (mailhost/sqlite/loopreader.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from typing import Any

from django.db import connection, models
from django.utils import timezone

# Runs a query (Django's "%s" placeholders) and returns its first row, or None.
FetchOne = Callable[[str, Sequence[Any]], tuple | None]


def fetch_one(sql: str, params: Sequence[Any]) -> tuple | None:
    """`FetchOne` on this thread's Django connection."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


@cache
def _statement(model: type[models.Model], vendor: str) -> tuple[str, list[models.Field]]:
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(str(f.column)) for f in fields)
    marks = ", ".join(["%s"] * len(fields))
    table = quote(model._meta.db_table)
    return f"INSERT INTO {table} ({columns}) VALUES ({marks}) RETURNING id", fields


def field_value(field: models.Field, row: dict):
    if field.attname in row:
        return row[field.attname]
    if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
        return timezone.now()
    return field.get_default()


def insert(model: type[models.Model], row: dict) -> int:
    """INSERT one row of `model` (keys are field attnames; the rest take their defaults)
    and return its id."""
    sql, fields = _statement(model, connection.vendor)
    values = [f.get_db_prep_save(field_value(f, row), connection) for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        return cursor.fetchone()[0]
