"""ORM querysets compiled once and run again with new values.

Compiling a queryset costs 0.2 to 0.4 ms of CPU per statement, more than running it. The
statements every request or send runs (the session, the user, the conversation or message,
the sender's lock, an answer's final event; the send's touch of its conversation and the
answer's final write) are compiled once per database alias here, then run on Django's cursor
with the values put in their parameter slots. The queryset stays the source of truth: its
SQL, its placeholders and its result converters are the ORM's own, so a change of model,
backend or lookup follows. `insert_rows` is the one statement written from the model's
fields instead: the send's two rows (see its docstring).

A slot is found by building the queryset with a random stand-in for each value and looking
for that stand-in, as the field prepares it, among the compiled parameters: a queryset whose
SQL would depend on the value itself (None turning into IS NULL, a list into IN) is refused,
as its stand-in is not found exactly once.
"""

from __future__ import annotations

import datetime as dt
import functools
import random
import uuid
from collections.abc import Callable
from typing import Any, NamedTuple, cast

from django.db import connections, models, transaction
from django.db.models import QuerySet, sql
from django.db.models.query import get_related_populators
from django.db.models.sql.compiler import SQLCompiler
from django.db.transaction import TransactionManagementError

Converters = dict[int, tuple[list[Callable[..., Any]], Any]]


class _Compiled(NamedTuple):
    sql: str
    params: list[Any]
    slots: dict[str, int]  # the parameter index of each keyword's value
    converters: Converters
    # The stand-ins' queryset (Any: ModelIterable's private attributes are read from it) and
    # its compiler after as_sql, which knows what was selected: for PreparedModel's hydration.
    queryset: Any
    compiler: SQLCompiler


class Prepared:
    """`build(**stand_ins)` returns the queryset; `fields` names the model field each keyword's
    value is compared with. `rows` are the selected columns, converted as the ORM converts
    them (a values_list's rows; PreparedModel makes instances)."""

    def __init__(self, build: Callable[..., QuerySet[Any]], **fields: models.Field[Any, Any]):
        self.build = build  # also the ORM's way of the same read (bench.querycost times both)
        self._fields = fields
        self._compiled: dict[str, _Compiled] = {}

    def rows(self, using: str = "default", **values: Any) -> list[list[Any]]:
        connection = connections[using]
        compiled = self.compiled(using)
        if compiled.compiler.query.select_for_update and connection.get_autocommit():
            raise TransactionManagementError(
                "select_for_update cannot be used outside of a transaction."
            )
        params = _bound(compiled.params, compiled.slots, self._fields, values, connection)
        with connection.cursor() as cursor:
            cursor.execute(compiled.sql, params)
            fetched = [list(row) for row in cursor.fetchall()]
        for index, (converters, expression) in compiled.converters.items():
            for row in fetched:
                for converter in converters:
                    row[index] = converter(row[index], expression, connection)
        return fetched

    def first(self, using: str = "default", **values: Any) -> list[Any] | None:
        found = self.rows(using, **values)
        return found[0] if found else None

    def compiled(self, using: str) -> _Compiled:
        compiled = self._compiled.get(using)
        if compiled is None:
            compiled = self._compiled[using] = self._compile(using)
        return compiled

    def _compile(self, using: str) -> _Compiled:
        connection = connections[using]
        stand_ins = {name: _stand_in(field) for name, field in self._fields.items()}
        queryset = self.build(**stand_ins)
        compiler: SQLCompiler = queryset.query.get_compiler(using=using)
        # Compiled inside the first run: the ORM refuses FOR UPDATE in autocommit then, as
        # `rows` does at every later run.
        statement, compiled_params = compiler.as_sql()
        params = list(compiled_params)
        slots = _filter_slots(self._fields, stand_ins, params, connection)
        selected = [column[0] for column in compiler.select[: compiler.col_count]]
        converters = compiler.get_converters(selected)
        return _Compiled(statement, params, slots, converters, queryset, compiler)


class PreparedModel[M: models.Model]:
    """A queryset of model instances, prepared, and hydrated as the ORM's ModelIterable
    hydrates them: `from_db` (so `_state` says which database, and that the row is saved),
    select_related's objects cached on them, annotations set."""

    def __init__(self, build: Callable[..., QuerySet[M]], **fields: models.Field[Any, Any]):
        self._prepared = Prepared(build, **fields)
        self.build = build
        self._hydration: dict[str, _Hydration] = {}

    def all(self, using: str = "default", **values: Any) -> list[M]:
        rows = self._prepared.rows(using, **values)
        hydration = self._hydration.get(using)
        if hydration is None:
            hydration = self._hydration[using] = _Hydration(self._prepared.compiled(using), using)
        return [hydration.instance(row) for row in rows]

    def first(self, using: str = "default", **values: Any) -> M | None:
        found = self.all(using, **values)
        return found[0] if found else None


class _Hydration:
    """ModelIterable's steps for one compiled query, worked out once."""

    def __init__(self, compiled: _Compiled, using: str) -> None:
        compiler = compiled.compiler
        info = compiler.klass_info
        if info is None:
            raise ValueError("PreparedModel needs a queryset of model instances")
        if compiler.query.combinator or compiled.queryset._known_related_objects:
            raise ValueError("PreparedModel takes a plain queryset: no union, no related manager")
        fetch_mode = compiled.queryset._fetch_mode
        first, last = info["select_fields"][0], info["select_fields"][-1] + 1
        self._using = using
        self._model = info["model"]
        self._span = slice(first, last)
        self._attnames = [column[0].target.attname for column in compiler.select[first:last]]
        self._related = get_related_populators(info, compiler.select, using, fetch_mode)
        self._annotations = dict(compiler.annotation_col_map or {})
        self._fetch_mode = fetch_mode

    def instance(self, row: list[Any]) -> Any:
        obj = self._model.from_db(
            self._using, self._attnames, row[self._span], fetch_mode=self._fetch_mode
        )
        for populator in self._related:
            populator.populate(row, obj)
        for name, position in self._annotations.items():
            setattr(obj, name, row[position])
        return obj


class _CompiledUpdate(NamedTuple):
    sql: str
    params: list[Any]
    slots: dict[str, int]  # the filter's values
    columns: list[tuple[str, models.Field[Any, Any], int]]  # each new value's name, field, slot


class PreparedUpdate:
    """`QuerySet.update` of the rows `build(**values)` selects, compiled once per database and
    set of columns. `fields` names the field each filter keyword is compared with, as for
    Prepared; the new values are prepared for saving by their own fields, as `update` does.
    A plain value only (no F() expression, no instance), into the queryset's own table."""

    def __init__(self, build: Callable[..., QuerySet[Any]], **fields: models.Field[Any, Any]):
        self.build = build
        self._fields = fields
        self._compiled: dict[tuple[str, tuple[str, ...]], _CompiledUpdate] = {}

    def update(self, using: str = "default", *, values: dict[str, Any], **where: Any) -> int:
        """The rows updated, as `QuerySet.update` counts them."""
        connection = connections[using]
        key = (using, tuple(values))
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self._compiled[key] = self._compile(using, key[1])
        params = _bound(compiled.params, compiled.slots, self._fields, where, connection)
        for name, field, slot in compiled.columns:
            value = values[name]
            if hasattr(value, "resolve_expression") or isinstance(value, models.Model):
                raise TypeError(f"{name!r}: a prepared update takes plain values")
            params[slot] = field.get_db_prep_save(value, connection)
        with transaction.mark_for_rollback_on_error(using), connection.cursor() as cursor:
            cursor.execute(compiled.sql, params)
            return cursor.rowcount

    def _compile(self, using: str, names: tuple[str, ...]) -> _CompiledUpdate:
        connection = connections[using]
        where = {name: _stand_in(field) for name, field in self._fields.items()}
        query = cast(sql.UpdateQuery, self.build(**where).query.chain(sql.UpdateQuery))
        meta = query.get_meta()
        columns: dict[str, models.Field[Any, Any]] = {}
        for name in names:
            field = meta.get_field(name)
            if not isinstance(field, models.Field) or not field.concrete:
                raise ValueError(f"{name!r} is not a column of {meta.label}")
            columns[name] = field
        new = {name: _stand_in(field) for name, field in columns.items()}
        taken = {repr(value) for value in where.values()}
        while len(taken | {repr(value) for value in new.values()}) < len(taken) + len(new):
            new = {name: _stand_in(field) for name, field in columns.items()}  # two drew alike
        query.add_update_values(new)
        query.clear_select_clause()
        query.get_initial_alias()
        if query.get_related_updates() or query.count_active_tables() != 1 or query.order_by:
            # The ORM would read the rows' ids first (or order them): not one statement.
            raise ValueError("PreparedUpdate takes a filter on its model's own table, unordered")
        statement, compiled_params = query.get_compiler(using=using).as_sql()
        params = list(compiled_params)
        slots = _filter_slots(self._fields, where, params, connection)
        targets = [
            (name, field, _slot(name, field.get_db_prep_save(new[name], connection), params))
            for name, field in columns.items()
        ]
        return _CompiledUpdate(statement, params, slots, targets)


def insert_rows(objs: list[models.Model], using: str = "default") -> None:
    """`bulk_create` of a few new rows of one model, in one plain multi-row INSERT.

    The ORM compiles a bulk INSERT afresh each time, and on PostgreSQL sends its rows as
    arrays that psycopg types element by element: about a millisecond of CPU for the send's
    two rows. This writes the statement from the model's own fields (their columns, their
    `pre_save` for the auto_now dates, their `get_db_prep_save`) and marks the instances
    saved, as `bulk_create` does. Like it, no signals and no `save()`. Only for a model whose
    values all come from Python (no db_default, no generated or database-returned field), of
    one table (no parent model), and for a few rows: one statement, no batches.
    """
    connection = connections[using]
    statement, fields = _insert_statement(using, type(objs[0]), len(objs))
    for obj in objs:
        # bulk_create's own check: no unsaved related object; a relation's id taken from it.
        obj._prepare_related_fields_for_save(operation_name="bulk_create")  # type: ignore[attr-defined]
    params = [
        field.get_db_prep_save(field.pre_save(obj, add=True), connection)
        for obj in objs
        for field in fields
    ]
    with transaction.mark_for_rollback_on_error(using), connection.cursor() as cursor:
        cursor.execute(statement, params)
    for obj in objs:
        obj._state.adding = False
        obj._state.db = using


@functools.cache
def _insert_statement(
    using: str, model: type[models.Model], rows: int
) -> tuple[str, list[models.Field[Any, Any]]]:
    """insert_rows' SQL and the fields of its columns, worked out once."""
    quote = connections[using].ops.quote_name
    fields = _insertable_fields(model)
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    columns = ", ".join(quote(str(field.column)) for field in fields)
    table = quote(str(model._meta.db_table))
    return f"INSERT INTO {table} ({columns}) VALUES {', '.join([row] * rows)}", fields


def _insertable_fields(model: type[models.Model]) -> list[models.Field[Any, Any]]:
    fields = list(model._meta.concrete_fields)
    if (
        model._meta.db_returning_fields
        or model._meta.parents
        or any(
            field.generated or field.has_db_default() or hasattr(field, "get_placeholder_sql")
            for field in fields
        )
    ):
        raise ValueError(f"{model.__name__} has values from the database: use bulk_create")
    return fields


def _filter_slots(
    fields: dict[str, models.Field[Any, Any]],
    stand_ins: dict[str, Any],
    params: list[Any],
    connection: Any,
) -> dict[str, int]:
    """Each filter keyword's parameter slot, found by its stand-in as its field prepares it."""
    return {
        name: _slot(name, field.get_db_prep_value(stand_ins[name], connection), params)
        for name, field in fields.items()
    }


def _bound(
    compiled: list[Any],
    slots: dict[str, int],
    fields: dict[str, models.Field[Any, Any]],
    values: dict[str, Any],
    connection: Any,
) -> list[Any]:
    """A compiled statement's parameters, with the filter's values in their slots."""
    params = list(compiled)
    for name, slot in slots.items():
        params[slot] = fields[name].get_db_prep_value(values[name], connection)
    return params


def _slot(name: str, prepared: Any, params: list[Any]) -> int:
    """Where a stand-in's prepared value is among a compiled statement's parameters."""
    found = [i for i, param in enumerate(params) if param == prepared]
    if len(found) != 1:
        raise ValueError(
            f"{name!r} is in the compiled query {len(found)} times, not once: "
            "its SQL must not depend on the value"
        )
    return found[0]


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
