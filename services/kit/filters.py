"""MongoDB-style filters compiled to SQLAlchemy boolean expressions.

A filter is a plain dict, as `json_format.MessageToDict` makes from a `google.protobuf.Struct`
(so every number arrives as a float). Its language:

- `{"name": "ann"}` is implicit equality, the same as `{"name": {"$eq": "ann"}}`.
- Operators: `$eq $ne $gt $gte $lt $lte` (one value), `$in $nin` (a list), `$exists` (true or
  false), `$contains` (one value; list fields only). Several operators on one field all apply:
  `{"age": {"$gte": 18, "$lt": 30}}`. Several fields in one object all apply.
- Combinators: `{"$and": [filter, …]}`, `{"$or": [filter, …]}`: non-empty lists of filters,
  nested to any depth, next to fields or to each other.
- Missing values follow MongoDB: `$ne` and `$nin` also match rows where the field is missing
  (SQL NULL, or an absent custom key); `{"field": null}` matches missing or null values;
  `$exists: true` matches a present key even when its value is null.

How each kind of field reads its values (`Kind`):

- `string`, `number` (int or float, never a bool), `bool`, `datetime` (an RFC 3339 string;
  without an offset it is read as UTC), `enum` (a word mapped to the stored value: the
  reference's lowercase word, the proto name, or the proto number — see `enum_aliases`).
- `array_of_strings` (a JSON list column, e.g. user `teams`): `$contains "x"` and `$eq "x"` mean
  the list holds "x"; `$in [..]` means the list shares at least one value with [..] (overlap);
  `$ne` / `$nin` are their negations; `$exists` means the value is a list.
- `$contains` is for lists only. It never means substring on strings: the reference defines it
  for list fields (`teams`, `segments`), and a substring match would be a full-table scan that
  no index serves.

Custom fields (`FilterSpec.custom_column`): on users and channels any other name is a key of
the `custom` JSON document, `{"country": "USA"}`; a dotted name is a nested key
(`{"address.city": "Paris"}`), so names are letters, digits, `_` and `-`, dot-separated. The
comparison takes its type from the value's: a string compares only with JSON strings, a number
only with JSON numbers, a bool only with JSON booleans (a stored "10" never equals 10, and no
comparison ever fails on a value of another type). `$in` takes a list of such values; on
custom keys `$contains` means the key holds a JSON array with that value. The SQL is JSON1 on
SQLite (`json_type`, `json_extract`, `json_each`) and JSONB on PostgreSQL (`jsonb_typeof`,
`#>`, `#>>`, `@>`), so the column must be `kit.db.JsonDoc`; so must `array_of_strings` columns.

Errors are `InvalidFilter` (INVALID_ARGUMENT, reason INVALID_FILTER) whose field is the
offending path inside the request: `filter.status.$in[1]`, `filter.$and[1].name.$foo`,
`filter.foo` (unknown field).

Budgets (DESIGN §10.3, numbers in `services.kit.limits`), so that a filter accepted once can
always run: at most 4 MiB serialized (`check_filter_size`, before a Struct is even converted),
10 levels of `$and` / `$or`, 100 clauses per level (a combinator's list, an object's entries),
10,000 values in a `$in` / `$nin`, and at most MAX_FILTER_PARAMETERS bound SQL parameters in
all (a campaign's audience runs the filters of up to 25 segments in one statement, and SQLite
allows 32,766 parameters per statement, asyncpg 32,767). A `$in` list binds as ONE parameter (a
JSON array the database unnests), so its length does not count. `$and` / `$or` render as
balanced trees of parenthesised halves: SQLite parses `a OR b OR …` as a chain as deep as it is
long, and refuses expressions deeper than 1,000.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from google.protobuf import json_format
from google.protobuf.message import Message
from google.protobuf.struct_pb2 import Struct
from sqlalchemy import (JSON, BigInteger, Boolean, DateTime, Float, String, and_, bindparam, case, cast, false, func,
                        literal, literal_column, or_, select, true)
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import BindParameter, ColumnClause, ColumnElement
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeEngine

from services.kit import reasons
from services.kit.errors import InvalidArgument
from services.kit.limits import (MAX_FILTER_BYTES, MAX_FILTER_CLAUSES, MAX_FILTER_DEPTH, MAX_FILTER_IN_VALUES,
                                 MAX_FILTER_PARAMETERS)


class InvalidFilter(InvalidArgument):
    """A filter the client sent is wrong at `path`."""

    def __init__(self, path: str, description: str) -> None:
        super().__init__(path, description, reason=reasons.INVALID_FILTER)


class Kind(enum.StrEnum):
    """How a field's values are read and compared."""

    STRING = "string"
    NUMBER = "number"
    BOOL = "bool"
    DATETIME = "datetime"
    ENUM = "enum"
    ARRAY_OF_STRINGS = "array_of_strings"


COMPARISONS = {
    "$gt": lambda x, v: x > v,
    "$gte": lambda x, v: x >= v,
    "$lt": lambda x, v: x < v,
    "$lte": lambda x, v: x <= v,
}
OPERATORS = frozenset({"$eq", "$ne", "$in", "$nin", "$exists", "$contains", *COMPARISONS})
COMBINATORS = ("$and", "$or")
# $ne / $nin match exactly the rows their positive operator does not (NULLs included).
NEGATIONS = {"$ne": "$eq", "$nin": "$in"}

_UNORDERED = frozenset({"$eq", "$ne", "$in", "$nin", "$exists"})
_ORDERED = _UNORDERED | frozenset(COMPARISONS)
DEFAULT_OPERATORS: dict[Kind, frozenset[str]] = {
    Kind.STRING: _ORDERED,
    Kind.NUMBER: _ORDERED,
    # Booleans have no order (SQL refuses `> true`, and a custom key's bool compares only by equality).
    Kind.BOOL: _UNORDERED,
    Kind.DATETIME: _ORDERED,
    # Stored enum values have no meaningful order.
    Kind.ENUM: _UNORDERED,
    Kind.ARRAY_OF_STRINGS: frozenset({"$eq", "$ne", "$in", "$nin", "$exists", "$contains"}),
}

CustomCompile = Callable[[str, Any], ColumnElement[bool]]


@dataclass(frozen=True)
class Field:
    """One filterable field: a column read as `kind`, or a `compile` function of its own.

    `operators` restricts what the field accepts (default: all that make sense for `kind`).
    `values` (enum only) maps every accepted word or number to the stored value.
    `compile(op, value)` builds the condition itself (e.g. an EXISTS over a child table); it is
    asked only for `$eq $gt $gte $lt $lte $in $contains` and `("$exists", True)`, with values
    already checked and parsed as `kind` (lists of them for `$in`; for `array_of_strings`,
    the element: a str). `$ne`, `$nin`, `$exists: false` and `null` are its negations.
    """

    column: Any = None
    kind: Kind = Kind.STRING
    operators: frozenset[str] | None = None
    values: Mapping[Any, Any] | None = None
    compile: CustomCompile | None = None

    def __post_init__(self) -> None:
        kind = Kind(self.kind)
        operators = frozenset(self.operators) if self.operators is not None else DEFAULT_OPERATORS[kind]
        if operators - OPERATORS:
            raise ValueError(f"unknown operators {sorted(operators - OPERATORS)}")
        if (self.column is None) == (self.compile is None):
            raise ValueError("a filter field needs either a column or a compile function")
        if kind is Kind.ENUM and not self.values:
            raise ValueError("an enum field needs its values")
        if "$contains" in operators and kind is not Kind.ARRAY_OF_STRINGS:
            raise ValueError("$contains is for list fields only")
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "operators", operators)

    @property
    def accepted_operators(self) -> frozenset[str]:
        """`operators`, which `__post_init__` has settled (the kind's defaults when none were given)."""
        return DEFAULT_OPERATORS[self.kind] if self.operators is None else self.operators


@dataclass(frozen=True)
class FilterSpec:
    """The fields a query filters on; with `custom_column`, other names are keys inside it."""

    fields: Mapping[str, Field]
    custom_column: Any = None


def enum_aliases(enum_type: Any, *, stored_as: str = "word") -> dict[Any, Any]:
    """Accepted filter values of a proto enum, each mapped to what the column stores.

    For `CampaignStatus`: "draft", "CAMPAIGN_STATUS_DRAFT" and 1 all map to "draft" (stored_as
    "word"), to 1 ("number") or to "CAMPAIGN_STATUS_DRAFT" ("name"). `_UNSPECIFIED` is left out.
    `enum_type` is a generated enum wrapper (anything with `.items()` of (name, number)).
    """
    items = list(enum_type.items())
    unspecified = next(name for name, number in items if number == 0)
    prefix = unspecified.removesuffix("UNSPECIFIED")
    aliases: dict[Any, Any] = {}
    for name, number in items:
        if number == 0:
            continue
        word = name.removeprefix(prefix).lower()
        stored = {"word": word, "number": number, "name": name}[stored_as]
        aliases[word] = aliases[name] = aliases[number] = stored
    return aliases


def check_filter_size(struct: Struct, field: str = "filter") -> None:
    """INVALID_FILTER on `field` when the Struct filter is over MAX_FILTER_BYTES serialized;
    checked before it is converted, which would take far more memory than its bytes."""
    if struct.ByteSize() > MAX_FILTER_BYTES:
        raise InvalidFilter(field, f"must be at most {MAX_FILTER_BYTES} bytes serialized")


def request_filter(request: Message, field: str = "filter") -> dict[str, Any] | None:
    """A request's Struct filter as this module reads it (None when the request has none)."""
    if not request.HasField(field):
        return None
    check_filter_size(getattr(request, field), field)
    return json_format.MessageToDict(getattr(request, field))


def compile_filter(spec: FilterSpec, filter_dict: Mapping[str, Any] | None,
                   field_prefix: str = "filter") -> ColumnElement[bool]:
    """The SQL condition of `filter_dict`; an empty or missing filter matches every row."""
    if filter_dict is None:
        return true()
    condition = _compile_object(spec, filter_dict, field_prefix, 0)
    if _parameters(condition) > MAX_FILTER_PARAMETERS:
        raise InvalidFilter(field_prefix, f"is too large: it would bind more than {MAX_FILTER_PARAMETERS} SQL "
                                          "parameters; use fewer conditions ($in lists count once)")
    return condition


# ---------------------------------------------------------------------------------------------
# Walking the filter


def _compile_object(spec: FilterSpec, filter_: Any, path: str, depth: int) -> ColumnElement[bool]:
    if not isinstance(filter_, Mapping):
        raise InvalidFilter(path, "must be an object")
    _check_clauses(len(filter_), path, "entries")
    return _all(_compile_entry(spec, key, value, f"{path}.{key}", depth) for key, value in filter_.items())


def _compile_entry(spec: FilterSpec, key: str, value: Any, path: str, depth: int) -> ColumnElement[bool]:
    if key in COMBINATORS:
        return _compile_combinator(spec, key, value, path, depth + 1)
    if key.startswith("$"):
        raise InvalidFilter(path, f"unknown operator; combine filters with {' or '.join(COMBINATORS)}")
    target = _target(spec, key, path)
    if isinstance(value, Mapping):
        if not value:
            raise InvalidFilter(path, "needs a value or at least one operator")
        return _all(_compile_operator(target, op, operand, f"{path}.{op}") for op, operand in value.items())
    return _compile_operator(target, "$eq", value, path)


def _compile_combinator(spec: FilterSpec, key: str, value: Any, path: str, depth: int) -> ColumnElement[bool]:
    if depth > MAX_FILTER_DEPTH:
        raise InvalidFilter(path, f"nests {' / '.join(COMBINATORS)} more than {MAX_FILTER_DEPTH} levels deep")
    if not isinstance(value, list) or not value:
        raise InvalidFilter(path, "must be a non-empty list of filters")
    _check_clauses(len(value), path, "filters")
    parts = [_compile_object(spec, item, f"{path}[{i}]", depth) for i, item in enumerate(value)]
    return _balanced(and_ if key == "$and" else or_, parts)


def _check_clauses(count: int, path: str, what: str) -> None:
    if count > MAX_FILTER_CLAUSES:
        raise InvalidFilter(path, f"must hold at most {MAX_FILTER_CLAUSES} {what} (got {count})")


def _balanced(combine: Callable[..., ColumnElement[bool]], parts: Sequence[ColumnElement[bool]]) -> ColumnElement[bool]:
    """`combine(*parts)` as a tree of parenthesised halves, as deep as log2(len(parts)):
    SQLite's parser makes `a OR b OR c …` a chain, and 10 levels of 100 would pass its limit."""
    if len(parts) <= 2:
        return combine(*parts)
    middle = len(parts) // 2
    return combine(parenthesised(_balanced(combine, parts[:middle])), parenthesised(_balanced(combine, parts[middle:])))


_COUNTING_DIALECT = sqlite.dialect()  # positional parameters, and the most of them per condition


def _parameters(condition: ColumnElement[bool]) -> int:
    """The SQL parameters `condition` binds (a list bound to an expanding IN counts its values)."""
    compiled = condition.compile(dialect=_COUNTING_DIALECT)
    binds = compiled.binds
    return sum(len(binds[name].value or ()) if binds[name].expanding else 1 for name in compiled.positiontup or ())


def _compile_operator(target: _Target, op: str, operand: Any, path: str) -> ColumnElement[bool]:
    if op not in OPERATORS:
        raise InvalidFilter(path, f"unknown operator; use one of {', '.join(sorted(target.operators))}")
    if op not in target.operators:
        raise InvalidFilter(path, f"is not supported on this field; use one of {', '.join(sorted(target.operators))}")
    if op in NEGATIONS:
        return _not(_positive(target, NEGATIONS[op], operand, path))
    return _positive(target, op, operand, path)


def _positive(target: _Target, op: str, operand: Any, path: str) -> ColumnElement[bool]:
    if op == "$exists":
        if not isinstance(operand, bool):
            raise InvalidFilter(path, "must be true or false")
        return target.exists() if operand else _not(target.exists())
    if op == "$eq" and operand is None:
        return target.is_null()
    if op == "$in":
        if not isinstance(operand, list):
            raise InvalidFilter(path, "must be a list")
        if len(operand) > MAX_FILTER_IN_VALUES:
            raise InvalidFilter(path, f"must list at most {MAX_FILTER_IN_VALUES} values (got {len(operand)})")
        return target.condition(op, [target.parse(v, f"{path}[{i}]", op) for i, v in enumerate(operand)])
    return target.condition(op, target.parse(operand, path, op))


def _target(spec: FilterSpec, key: str, path: str) -> _Target:
    field = spec.fields.get(key)
    if field is not None:
        if field.compile is not None:
            return _CompiledTarget(field, field.compile)
        if field.kind is Kind.ARRAY_OF_STRINGS:
            return _ArrayTarget(field)
        return _ColumnTarget(field)
    if spec.custom_column is None:
        raise InvalidFilter(path, f"unknown field; filter on {', '.join(sorted(spec.fields))}")
    if not _CUSTOM_KEY.fullmatch(key):
        raise InvalidFilter(path, "is not a custom field name (letters, digits, _ and -; dots for nested keys)")
    return _JsonKeyTarget(spec.custom_column, tuple(key.split(".")))


_CUSTOM_KEY = re.compile(r"[\w-]+(\.[\w-]+)*")


def _all(conditions: Iterable[ColumnElement[bool]]) -> ColumnElement[bool]:
    conditions = list(conditions)
    return _balanced(and_, conditions) if conditions else true()


def _not(condition: ColumnElement[bool]) -> ColumnElement[bool]:
    # `IS NOT TRUE` rather than NOT: a NULL (missing value) must count as "did not match".
    return condition.is_not(true())


# ---------------------------------------------------------------------------------------------
# Values


def _parse_kind(kind: Kind, value: Any, path: str, values: Mapping[Any, Any] | None = None) -> Any:
    if kind in (Kind.STRING, Kind.ARRAY_OF_STRINGS):
        if isinstance(value, str):
            return value
        raise InvalidFilter(path, "must be a string")
    if kind is Kind.NUMBER:
        if _is_number(value):
            return value
        raise InvalidFilter(path, "must be a number")
    if kind is Kind.BOOL:
        if isinstance(value, bool):
            return value
        raise InvalidFilter(path, "must be true or false")
    if kind is Kind.DATETIME:
        return _parse_datetime(value, path)
    return _parse_enum(value, values or {}, path)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _parse_datetime(value: Any, path: str) -> dt.datetime:
    if not isinstance(value, str):
        raise InvalidFilter(path, "must be an RFC 3339 timestamp string")
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidFilter(path, f"is not an RFC 3339 timestamp: {value!r}") from None
    # Herald keeps every time in UTC, so a time without an offset is read as UTC.
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=dt.timezone.utc)
    try:
        return parsed.astimezone(dt.timezone.utc)
    except OverflowError:  # 0001-01-01T00:00+01:00 is in year 0 in UTC
        raise InvalidFilter(path, "must lie within 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z") from None


def _parse_enum(value: Any, values: Mapping[Any, Any], path: str) -> Any:
    # Struct numbers arrive as floats: 1.0 finds the key 1 (equal hashes); bools are not numbers.
    if isinstance(value, (str, int, float)) and not isinstance(value, bool) and value in values:
        return values[value]
    words = sorted(k for k in values if isinstance(k, str) and k.islower()) or sorted(map(str, values))
    raise InvalidFilter(path, f"unknown value {value!r}; use one of {', '.join(words)}")


# ---------------------------------------------------------------------------------------------
# Targets: what a field name resolves to


class _Target(Protocol):
    operators: frozenset[str]

    def parse(self, value: Any, path: str, op: str) -> Any: ...

    def condition(self, op: str, value: Any) -> ColumnElement[bool]: ...

    def exists(self) -> ColumnElement[bool]: ...

    def is_null(self) -> ColumnElement[bool]: ...


class _ColumnTarget:
    """A scalar column: string, number, bool, datetime or enum."""

    def __init__(self, field: Field):
        self.field = field
        self.column = field.column
        self.operators = field.accepted_operators

    def parse(self, value: Any, path: str, op: str) -> Any:
        return _parse_kind(self.field.kind, value, path, self.field.values)

    def condition(self, op: str, value: Any) -> ColumnElement[bool]:
        if op == "$in":
            return in_list(self.column, [float(v) for v in value] if self.field.kind is Kind.NUMBER else value)
        if op == "$eq":
            return self.column == self._bound(value)
        return COMPARISONS[op](self.column, self._bound(value))

    def _bound(self, value: Any) -> Any:
        # Struct numbers are floats: bind them as floats, or asyncpg rejects 30.0 for an INTEGER.
        return literal(value, Float()) if self.field.kind is Kind.NUMBER else value

    def exists(self) -> ColumnElement[bool]:
        return self.column.is_not(None)

    def is_null(self) -> ColumnElement[bool]:
        return self.column.is_(None)


class _ArrayTarget:
    """A JSON list of strings (e.g. user `teams`): equality and $contains mean membership."""

    def __init__(self, field: Field):
        self.column = field.column
        self.operators = field.accepted_operators

    def parse(self, value: Any, path: str, op: str) -> Any:
        return _parse_kind(Kind.ARRAY_OF_STRINGS, value, path)

    def condition(self, op: str, value: Any) -> ColumnElement[bool]:
        if op == "$in":
            return json_array_overlaps(self.column, (), value)
        return json_array_contains(self.column, (), value)

    def exists(self) -> ColumnElement[bool]:
        return json_kind(self.column, ()) == "array"

    def is_null(self) -> ColumnElement[bool]:
        return _not(self.exists())


class _CompiledTarget:
    """A field whose conditions the caller builds (child tables, computed values)."""

    def __init__(self, field: Field, compile: CustomCompile):
        self.field = field
        self.compile = compile
        self.operators = field.accepted_operators

    def parse(self, value: Any, path: str, op: str) -> Any:
        return _parse_kind(self.field.kind, value, path, self.field.values)

    def condition(self, op: str, value: Any) -> ColumnElement[bool]:
        return self.compile(op, value)

    def exists(self) -> ColumnElement[bool]:
        return self.compile("$exists", True)

    def is_null(self) -> ColumnElement[bool]:
        return _not(self.exists())


class _JsonKeyTarget:
    """A key (path) inside a JSON document column, compared by the type of the given value."""

    operators = OPERATORS

    def __init__(self, document: Any, path: tuple[str, ...]):
        self.document = document
        self.path = path

    def parse(self, value: Any, path: str, op: str) -> Any:
        if op in COMPARISONS:
            if isinstance(value, str) or _is_number(value):
                return value
            raise InvalidFilter(path, "must be a string or a number")
        if isinstance(value, (str, bool)) or _is_number(value):
            return value
        raise InvalidFilter(path, "must be a string, number or boolean")

    def condition(self, op: str, value: Any) -> ColumnElement[bool]:
        if op == "$in":
            return self._one_of(value)
        if op == "$contains":
            return json_array_contains(self.document, self.path, value)
        typed = self._typed(_json_kind_of(value))
        return typed == value if op == "$eq" else COMPARISONS[op](typed, value)

    def exists(self) -> ColumnElement[bool]:
        return json_kind(self.document, self.path).is_not(None)

    def is_null(self) -> ColumnElement[bool]:
        return func.coalesce(json_kind(self.document, self.path), "null") == "null"

    def _one_of(self, values: Sequence[Any]) -> ColumnElement[bool]:
        by_kind: dict[str, list[Any]] = {}
        for value in values:
            by_kind.setdefault(_json_kind_of(value), []).append(value)
        return or_(false(), *(in_list(self._typed(kind), group) for kind, group in by_kind.items()))

    def _typed(self, kind: str) -> ColumnElement[Any]:
        """The value at the key when its JSON type is `kind`, else NULL (so nothing matches)."""
        node = self.document[self.path]
        extract = {"string": node.as_string, "number": node.as_float, "boolean": node.as_boolean}[kind]
        return case((json_kind(self.document, self.path) == kind, extract()))


def _json_kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    return "string" if isinstance(value, str) else "number"


# ---------------------------------------------------------------------------------------------
# Portable JSON SQL: one construct, one rendering per backend


def _json_path(path: tuple[str, ...]) -> Any:
    # SQLAlchemy formats the path per dialect: '$."a"."b"' on SQLite, text[] {a,b} on PostgreSQL.
    return bindparam(None, path, type_=JSON.JSONPathType())


class json_kind(FunctionElement[str]):
    """The JSON type at `path` in `document` in PostgreSQL's words ("string", "number",
    "boolean", "null", "object", "array"), or NULL when the key is missing."""

    name = "json_kind"
    type = String()
    inherit_cache = True

    def __init__(self, document: Any, path: tuple[str, ...]):
        super().__init__(document, _json_path(path))


class _Predicate(FunctionElement[bool]):
    """A condition its own compiler writes, parenthesised. Used as it is in WHERE, AND and OR:
    SQLAlchemy would compare any other Boolean function with 1 on SQLite (`(x IN (…)) = 1`), a
    condition the planner cannot use an index for — a full scan where an index would serve."""

    type = Boolean()
    inherit_cache = True  # each subclass says so too: SQLAlchemy reads it from the class's own namespace

    def self_group(self, against: Any = None) -> Any:
        if against in (operators.and_, operators.or_, operators._asbool):
            return self
        return super().self_group(against=against)


class json_array_contains(_Predicate):
    """True when the value at `path` in `document` is a JSON array holding `value`
    (same JSON type and equal); never NULL on SQLite, NULL for a missing document on PostgreSQL."""

    name = "json_array_contains"
    inherit_cache = True

    def __init__(self, document: Any, path: tuple[str, ...], value: Any):
        element = cast(literal(value), _SQL_TYPES[_json_kind_of(value)])
        super().__init__(document, _json_path(path), element, literal(_json_kind_of(value)))


_SQL_TYPES: dict[str, TypeEngine[Any]] = {"string": String(), "number": Float(), "boolean": Boolean()}

# SQLite's json_type words, in PostgreSQL's (jsonb_typeof) vocabulary.
_SQLITE_KINDS = {"text": "string", "integer": "number", "real": "number", "true": "boolean", "false": "boolean"}


def _sqlite_kind(json_type: Any) -> ColumnElement[str]:
    # Inline constants (not bound parameters): a fixed vocabulary, and readable SQL.
    words: dict[ColumnClause[str], ColumnClause[str]] = {
        literal_column(f"'{ours}'"): literal_column(f"'{theirs}'") for ours, theirs in _SQLITE_KINDS.items()}
    return case(words, value=json_type, else_=json_type)


@compiles(json_kind, "sqlite")
def _json_kind_sqlite(element: json_kind, compiler: Any, **kw: Any) -> str:
    document, path = element.clauses
    return compiler.process(_sqlite_kind(func.json_type(document, path)), **kw)


@compiles(json_kind, "postgresql")
def _json_kind_postgresql(element: json_kind, compiler: Any, **kw: Any) -> str:
    document, path = element.clauses
    return f"jsonb_typeof({compiler.process(document, **kw)} #> {compiler.process(path, **kw)})"


@compiles(json_array_contains, "sqlite")
def _json_array_contains_sqlite(element: json_array_contains, compiler: Any, **kw: Any) -> str:
    document, path, value, kind = element.clauses
    items = func.json_each(document, path).table_valued("value", "type")
    holds = select(literal(1)).select_from(items).where(_sqlite_kind(items.c.type) == kind, items.c.value == value)
    # json_each walks an object's values and a scalar itself too: only arrays count.
    # Parenthesised like every compiled construct here: callers apply IS NOT TRUE, AND, OR to it.
    return f"({compiler.process(and_(func.json_type(document, path) == 'array', holds.exists()), **kw)})"


@compiles(json_array_contains, "postgresql")
def _json_array_contains_postgresql(element: json_array_contains, compiler: Any, **kw: Any) -> str:
    document, path, value, _kind = element.clauses
    # A non-array never contains an array, so `@>` also checks the value is a list.
    return (f"(({compiler.process(document, **kw)} #> {compiler.process(path, **kw)})"
            f" @> jsonb_build_array({compiler.process(value, **kw)}))")


def _json_list(values: Sequence[Any]) -> BindParameter[str]:
    """`values` as one JSON array parameter; datetimes in UTC as SQLAlchemy stores them on SQLite
    ("YYYY-MM-DD HH:MM:SS.ffffff"), which PostgreSQL reads back as UTC (see `_pg_element`)."""
    items = [v.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(v, dt.datetime) else v
             for v in values]
    return bindparam(None, json.dumps(items), type_=String())


_ELEMENT: ColumnClause[str] = literal_column("value")  # the column jsonb_array_elements_text yields


def _pg_element(values: Sequence[Any]) -> ColumnElement[Any]:
    """On PostgreSQL, a JSON array's text element as the type of `values` (one type for all)."""
    sample = values[0] if values else ""
    if isinstance(sample, dt.datetime):
        return func.timezone(literal_column("'UTC'"), cast(_ELEMENT, DateTime()))
    if isinstance(sample, bool):
        return cast(_ELEMENT, Boolean())
    if isinstance(sample, int):
        return cast(_ELEMENT, BigInteger())
    return cast(_ELEMENT, Float()) if isinstance(sample, float) else _ELEMENT


class in_list(_Predicate):
    """`expr IN values`, the list bound as one parameter however long it is (a JSON array the
    database unnests); values of one type: str, int, float, bool or aware datetime."""

    name = "in_list"
    inherit_cache = True

    def __init__(self, expr: Any, values: Sequence[Any]):
        super().__init__(expr, _json_list(values), _pg_element(values))


class json_array_overlaps(_Predicate):
    """True when the value at `path` in `document` is a JSON array sharing a string with `values`."""

    name = "json_array_overlaps"
    inherit_cache = True

    def __init__(self, document: Any, path: tuple[str, ...], values: Sequence[str]):
        super().__init__(document, _json_path(path), _json_list(values))


@compiles(in_list, "sqlite")
def _in_list_sqlite(element: in_list, compiler: Any, **kw: Any) -> str:
    expr, values, _element = element.clauses
    return f"({compiler.process(expr, **kw)} IN (SELECT value FROM json_each({compiler.process(values, **kw)})))"


@compiles(in_list, "postgresql")
def _in_list_postgresql(element: in_list, compiler: Any, **kw: Any) -> str:
    expr, values, item = element.clauses
    return (f"({compiler.process(expr, **kw)} IN (SELECT {compiler.process(item, **kw)}"
            f" FROM jsonb_array_elements_text(CAST({compiler.process(values, **kw)} AS JSONB))))")


@compiles(json_array_overlaps, "sqlite")
def _json_array_overlaps_sqlite(element: json_array_overlaps, compiler: Any, **kw: Any) -> str:
    document, path, values = (compiler.process(clause, **kw) for clause in element.clauses)
    return (f"(json_type({document}, {path}) = 'array' AND EXISTS (SELECT 1 FROM json_each({document}, {path}) AS item"
            f" WHERE item.type = 'text' AND item.value IN (SELECT value FROM json_each({values}))))")


@compiles(json_array_overlaps, "postgresql")
def _json_array_overlaps_postgresql(element: json_array_overlaps, compiler: Any, **kw: Any) -> str:
    document, path, values = (compiler.process(clause, **kw) for clause in element.clauses)
    # `?|` also matches an object's keys: only arrays count.
    return (f"(jsonb_typeof({document} #> {path}) = 'array' AND ({document} #> {path})"
            f" ?| ARRAY(SELECT jsonb_array_elements_text(CAST({values} AS JSONB))))")


class parenthesised(_Predicate):
    """`(condition)`, kept as a unit: `and_` / `or_` flatten nested ones, groupings included."""

    name = "parenthesised"
    inherit_cache = True


@compiles(parenthesised)
def _parenthesised(element: parenthesised, compiler: Any, **kw: Any) -> str:
    [condition] = element.clauses
    return f"({compiler.process(condition, **kw)})"
