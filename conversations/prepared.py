"""ORM querysets compiled once and run again with new values.

Compiling a queryset costs about 0.4 ms of CPU per statement, more than running it; the
statements every request or send runs (the session, the conversation, the sender's lock) are
compiled once per database alias here and then run on Django's cursor with the values put in
their parameter slots. The queryset stays the source of truth: its SQL, its placeholders and
its result converters are the ORM's own, so a change of model, backend or lookup follows.

A slot is found by building the queryset with a random stand-in for each value and looking
for that stand-in, as the field prepares it, among the compiled parameters: a queryset whose
SQL would depend on the value itself (None turning into IS NULL, a list into IN) is refused,
as its stand-in is not found exactly once.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from django.db import connections, models
from django.db.models import QuerySet
from django.db.models.sql.compiler import SQLCompiler
from django.db.transaction import TransactionManagementError

Converters = dict[int, tuple[list[Callable[..., Any]], Any]]


class _Compiled(NamedTuple):
    sql: str
    params: list[Any]
    slots: dict[str, int]  # the parameter index of each keyword's value
    converters: Converters


class Prepared:
    """`build(**stand_ins)` returns the queryset (a values_list, or anything whose rows are
    tuples); `fields` names the model field each keyword's value is compared or stored with."""

    def __init__(self, build: Callable[..., QuerySet[Any]], **fields: models.Field[Any, Any]):
        self._build = build
        self._fields = fields
        self._compiled: dict[str, _Compiled] = {}
        self._for_update = False

    def rows(self, using: str = "default", **values: Any) -> Iterator[tuple[Any, ...]]:
        connection = connections[using]
        compiled = self._compiled.get(using) or self._compile(using)
        if self._for_update and connection.get_autocommit():
            raise TransactionManagementError(
                "select_for_update cannot be used outside of a transaction."
            )
        params = list(compiled.params)
        for name, slot in compiled.slots.items():
            params[slot] = self._fields[name].get_db_prep_value(values[name], connection)
        with connection.cursor() as cursor:
            cursor.execute(compiled.sql, params)
            fetched = cursor.fetchall()
        if not compiled.converters:
            yield from map(tuple, fetched)
            return
        for row in fetched:
            converted = list(row)
            for index, (converters, expression) in compiled.converters.items():
                for converter in converters:
                    converted[index] = converter(converted[index], expression, connection)
            yield tuple(converted)

    def first(self, using: str = "default", **values: Any) -> tuple[Any, ...] | None:
        return next(self.rows(using, **values), None)

    def _compile(self, using: str) -> _Compiled:
        connection = connections[using]
        stand_ins = {name: _stand_in(field) for name, field in self._fields.items()}
        queryset = self._build(**stand_ins)
        self._for_update = queryset.query.select_for_update
        compiler: SQLCompiler = queryset.query.get_compiler(using=using)
        # Compiled inside the first run: the ORM refuses FOR UPDATE in autocommit then, as
        # `rows` does at every later run.
        sql, compiled_params = compiler.as_sql()
        params = list(compiled_params)
        slots = {}
        for name, field in self._fields.items():
            prepared = field.get_db_prep_value(stand_ins[name], connection)
            found = [i for i, param in enumerate(params) if param == prepared]
            if len(found) != 1:
                raise ValueError(
                    f"{name!r} is in the compiled query {len(found)} times, not once: "
                    "its SQL must not depend on the value"
                )
            slots[name] = found[0]
        selected = [column[0] for column in compiler.select[: compiler.col_count]]
        compiled = _Compiled(sql, params, slots, compiler.get_converters(selected))
        self._compiled[using] = compiled
        return compiled


class PreparedModel[M: models.Model]:
    """A queryset of model instances, prepared: every concrete column, hydrated the way the
    ORM hydrates them (`from_db`, so `_state` says which database and that it is saved)."""

    def __init__(self, build: Callable[..., QuerySet[M]], **fields: models.Field[Any, Any]):
        self._model: type[M] | None = None
        self._attnames: list[str] = []

        def columns(**stand_ins: Any) -> QuerySet[Any]:
            queryset = build(**stand_ins)
            self._model = queryset.model
            self._attnames = [f.attname for f in queryset.model._meta.concrete_fields]
            return queryset.values_list(*self._attnames)

        self._prepared = Prepared(columns, **fields)

    def all(self, using: str = "default", **values: Any) -> list[M]:
        rows = list(self._prepared.rows(using, **values))
        assert self._model is not None  # compiled by the rows above
        return [self._model.from_db(using, self._attnames, row) for row in rows]

    def first(self, using: str = "default", **values: Any) -> M | None:
        found = self.all(using, **values)
        return found[0] if found else None


def _stand_in(field: models.Field[Any, Any]) -> Any:
    """A value of the field's type that no other parameter of a query equals by chance."""
    target = field.target_field if isinstance(field, models.ForeignKey) else field
    if isinstance(target, models.UUIDField):
        return uuid.uuid4()
    if isinstance(target, (models.IntegerField, models.AutoField)):
        # In 32 bits: out of its column's range, the ORM would compile no query at all.
        return -random.randrange(10**8, 2**31)
    if isinstance(target, models.DateTimeField):
        return dt.datetime(1901, 1, 1, microsecond=random.randrange(10**6), tzinfo=dt.UTC)
    if isinstance(target, (models.CharField, models.TextField)):
        return uuid.uuid4().hex
    raise TypeError(f"no stand-in for a {type(target).__name__}")
