"""Filters compiled to SQL, run against a real database (SQLite, or PostgreSQL when
HERALD_TEST_DATABASE_URL is set): every operator, combinator and custom-field rule, and the
exact field path of every malformed filter."""

from __future__ import annotations

import datetime as dt

import pytest
from herald.campaign.v1.campaign_pb2 import CampaignStatus
from sqlalchemy import Boolean, Column, ForeignKey, Integer, String, Table, and_, exists, insert, null, select

from services.kit.db import IdString, JsonDoc, UtcDateTime, create_tables, make_engine, new_metadata
from services.kit.errors import InvalidArgument
from services.kit.filters import Field, FilterSpec, Kind, compile_filter, enum_aliases, in_list

metadata = new_metadata()
people = Table(
    "people", metadata,
    Column("id", IdString(), primary_key=True),
    Column("name", String(64), nullable=False),
    Column("role", String(32)),
    Column("age", Integer),
    Column("teams", JsonDoc),
    Column("status", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("flag", Boolean, nullable=False),
    Column("custom", JsonDoc, nullable=False),
)
memberships = Table(
    "memberships", metadata,
    Column("person_id", IdString(), ForeignKey("people.id"), primary_key=True),
    Column("group_id", IdString(), primary_key=True),
)


def utc(*parts: int) -> dt.datetime:
    return dt.datetime(*parts, tzinfo=dt.timezone.utc)


PEOPLE = [
    ("u01", "ann", "admin", 30, ["red", "blue"], "draft", utc(2024, 1, 1), True,
     {"country": "USA", "score": 10, "vip": True, "address": {"city": "Paris"}}),
    ("u02", "bob", "user", 25, ["red"], "scheduled", utc(2024, 1, 2), False,
     {"country": "NL", "score": 20.5, "vip": False, "tags": ["x", "y"]}),
    ("u03", "cid", "user", 41, [], "in_progress", utc(2024, 1, 3), True,
     {"country": "USA", "score": "10"}),
    ("u04", "dan", None, None, null(), "completed", utc(2024, 1, 4), False, {}),
    ("u05", "eve", "admin", 19, ["blue"], "stopped", utc(2024, 1, 5), True,
     {"country": "DE", "address": {"city": "Berlin"}, "nickname": None}),
    ("u06", "fay", "moderator", 55, ["green"], "draft", utc(2024, 2, 1), False,
     {"country": "usa", "score": 5, "tags": ["y", 10]}),
    ("u07", "gus", "user", 30, ["red", "green"], "draft", utc(2024, 2, 2), True,
     {"vip": True, "address": {"city": None}}),
    ("u08", "hal", "user", 62, ["blue", "green"], "completed", utc(2024, 3, 1), False,
     {"score": 100, "country": "USA", "tags": "x"}),
    ("u09", "ivy", "admin", 33, ["red"], "scheduled", utc(2024, 3, 2), True,
     {"address": "Paris", "teams_size": 1}),
    ("u10", "jon", "user", 28, ["yellow"], "draft", utc(2024, 3, 3, 12), False,
     {"vip": "true", "tags": [True]}),
]
MEMBERSHIPS = [("u01", "g1"), ("u01", "g2"), ("u02", "g2"), ("u05", "g3")]
ALL = [row[0] for row in PEOPLE]


def member_of(op: str, value):
    """The `groups` field lives in a child table: each condition is an EXISTS over it."""
    membership = exists().where(memberships.c.person_id == people.c.id)
    if op == "$exists":
        return membership
    groups = value if op == "$in" else [value]
    return membership.where(memberships.c.group_id.in_(groups))


FIELDS = {
    "id": Field(people.c.id, operators={"$eq", "$gt", "$gte", "$lt", "$lte", "$in"}),
    "name": Field(people.c.name),
    "role": Field(people.c.role),
    "age": Field(people.c.age, Kind.NUMBER),
    "teams": Field(people.c.teams, Kind.ARRAY_OF_STRINGS),
    "status": Field(people.c.status, Kind.ENUM, values=enum_aliases(CampaignStatus)),
    "created_at": Field(people.c.created_at, Kind.DATETIME),
    "flag": Field(people.c.flag, Kind.BOOL),
    "groups": Field(kind=Kind.ARRAY_OF_STRINGS, compile=member_of),
}
WITH_CUSTOM = FilterSpec(FIELDS, custom_column=people.c.custom)
STRICT = FilterSpec(FIELDS)


@pytest.fixture
async def engine(db_url):
    engine = make_engine(db_url)
    await create_tables(engine, metadata)
    columns = [c.name for c in people.columns]
    async with engine.begin() as conn:
        await conn.execute(insert(people), [dict(zip(columns, row)) for row in PEOPLE])
        await conn.execute(insert(memberships), [{"person_id": p, "group_id": g} for p, g in MEMBERSHIPS])
    yield engine
    await engine.dispose()


async def matching(engine, spec: FilterSpec, filter_) -> list[str]:
    async with engine.connect() as conn:
        stmt = select(people.c.id).where(compile_filter(spec, filter_)).order_by(people.c.id)
        return list((await conn.scalars(stmt)).all())


def but(*ids: str) -> list[str]:
    return [i for i in ALL if i not in ids]


COLUMN_CASES = [
    ({"name": "ann"}, ["u01"]),
    ({"role": {"$eq": "admin"}}, ["u01", "u05", "u09"]),
    ({"role": {"$ne": "admin"}}, but("u01", "u05", "u09")),  # NULL role u04 included
    ({"role": None}, ["u04"]),
    ({"role": {"$ne": None}}, but("u04")),
    ({"name": {"$gt": "hal"}}, ["u09", "u10"]),
    ({"name": {"$gte": "hal"}}, ["u08", "u09", "u10"]),
    ({"name": {"$lt": "bob"}}, ["u01"]),
    ({"name": {"$lte": "bob"}}, ["u01", "u02"]),
    ({"name": {"$in": ["ann", "eve", "zed"]}}, ["u01", "u05"]),
    ({"role": {"$nin": ["admin", "user"]}}, ["u04", "u06"]),
    ({"role": {"$exists": True}}, but("u04")),
    ({"role": {"$exists": False}}, ["u04"]),
    ({"name": {"$in": []}}, []),
    ({"name": {"$nin": []}}, ALL),
    ({"id": {"$gte": "u08"}}, ["u08", "u09", "u10"]),
    ({"id": {"$in": ["u01", "u10"]}}, ["u01", "u10"]),
    ({"age": 30.0}, ["u01", "u07"]),
    ({"age": {"$gt": 40.0}}, ["u03", "u06", "u08"]),
    ({"age": {"$gte": 55.0}}, ["u06", "u08"]),
    ({"age": {"$lt": 25.0}}, ["u05"]),
    ({"age": {"$lte": 25}}, ["u02", "u05"]),
    ({"age": {"$lt": 25.5}}, ["u02", "u05"]),
    ({"age": {"$in": [25.0, 25.5]}}, ["u02"]),
    ({"age": {"$in": [19.0, 62.0]}}, ["u05", "u08"]),
    ({"age": {"$nin": [30.0]}}, but("u01", "u07")),
    ({"age": {"$ne": 30.0}}, but("u01", "u07")),
    ({"age": {"$exists": False}}, ["u04"]),
    ({"age": {"$gte": 25.0, "$lt": 33.0}}, ["u01", "u02", "u07", "u10"]),
    ({"flag": True}, ["u01", "u03", "u05", "u07", "u09"]),
    ({"flag": {"$ne": True}}, ["u02", "u04", "u06", "u08", "u10"]),
    ({"flag": {"$in": [False]}}, ["u02", "u04", "u06", "u08", "u10"]),
]

DATETIME_CASES = [
    ({"created_at": {"$gte": "2024-02-01T00:00:00Z"}}, ["u06", "u07", "u08", "u09", "u10"]),
    ({"created_at": {"$lt": "2024-01-03T00:00:00+00:00"}}, ["u01", "u02"]),
    # 13:00+01:00 is 12:00Z, u10's exact time: offsets are honoured.
    ({"created_at": {"$gt": "2024-03-03T13:00:00+01:00"}}, []),
    ({"created_at": {"$gte": "2024-03-03T13:00:00+01:00"}}, ["u10"]),
    ({"created_at": "2024-01-04T00:00:00Z"}, ["u04"]),
    ({"created_at": {"$in": ["2024-01-01T00:00:00Z", "2024-03-02T00:00:00.000Z"]}}, ["u01", "u09"]),
    ({"created_at": {"$ne": "2024-01-01T00:00:00Z"}}, but("u01")),
    ({"created_at": {"$lte": "2024-01-02"}}, ["u01", "u02"]),  # no offset: UTC
]

ENUM_CASES = [
    ({"status": "draft"}, ["u01", "u06", "u07", "u10"]),
    ({"status": {"$in": ["scheduled", "CAMPAIGN_STATUS_COMPLETED", 5.0]}}, ["u02", "u04", "u05", "u08", "u09"]),
    ({"status": {"$nin": ["draft"]}}, ["u02", "u03", "u04", "u05", "u08", "u09"]),
    ({"status": {"$ne": 1.0}}, ["u02", "u03", "u04", "u05", "u08", "u09"]),
    ({"status": "CAMPAIGN_STATUS_IN_PROGRESS"}, ["u03"]),
]

ARRAY_CASES = [
    ({"teams": {"$contains": "red"}}, ["u01", "u02", "u07", "u09"]),
    ({"teams": "green"}, ["u06", "u07", "u08"]),
    ({"teams": {"$in": ["blue", "yellow"]}}, ["u01", "u05", "u08", "u10"]),
    ({"teams": {"$in": []}}, []),
    ({"teams": {"$nin": ["red", "green"]}}, ["u03", "u04", "u05", "u10"]),
    ({"teams": {"$ne": "red"}}, ["u03", "u04", "u05", "u06", "u08", "u10"]),
    ({"teams": {"$exists": True}}, but("u04")),
    ({"teams": {"$exists": False}}, ["u04"]),
    ({"teams": {"$contains": "purple"}}, []),
    ({"groups": "g2"}, ["u01", "u02"]),
    ({"groups": {"$contains": "g3"}}, ["u05"]),
    ({"groups": {"$in": ["g1", "g3"]}}, ["u01", "u05"]),
    ({"groups": {"$nin": ["g2"]}}, but("u01", "u02")),
    ({"groups": {"$ne": "g2"}}, but("u01", "u02")),
    ({"groups": {"$exists": True}}, ["u01", "u02", "u05"]),
    ({"groups": {"$exists": False}}, but("u01", "u02", "u05")),
]

CUSTOM_CASES = [
    ({"country": "USA"}, ["u01", "u03", "u08"]),
    ({"country": {"$ne": "USA"}}, but("u01", "u03", "u08")),
    ({"country": {"$in": ["NL", "DE"]}}, ["u02", "u05"]),
    ({"country": {"$nin": ["USA", "NL"]}}, ["u04", "u05", "u06", "u07", "u09", "u10"]),
    ({"country": {"$gt": "M"}}, ["u01", "u02", "u03", "u06", "u08"]),
    # Typed by the value: the number 10 and the string "10" are different values.
    ({"score": 10.0}, ["u01"]),
    ({"score": "10"}, ["u03"]),
    ({"score": {"$gt": 9.0}}, ["u01", "u02", "u08"]),
    ({"score": {"$gte": 20.5}}, ["u02", "u08"]),
    ({"score": {"$lt": 10.0}}, ["u06"]),
    ({"score": {"$lte": 10.0}}, ["u01", "u06"]),
    ({"score": {"$in": [5.0, "10"]}}, ["u03", "u06"]),
    ({"score": {"$ne": 10.0}}, but("u01")),
    ({"vip": True}, ["u01", "u07"]),
    ({"vip": False}, ["u02"]),
    ({"vip": "true"}, ["u10"]),
    ({"vip": {"$ne": True}}, but("u01", "u07")),
    ({"vip": {"$in": [False, "true"]}}, ["u02", "u10"]),
    ({"address.city": "Paris"}, ["u01"]),  # u09's address is the string "Paris"
    ({"address.city": {"$exists": True}}, ["u01", "u05", "u07"]),  # u07's city is null
    ({"address.city": {"$exists": False}}, but("u01", "u05", "u07")),
    ({"address.city": None}, but("u01", "u05")),
    ({"address.city": {"$ne": None}}, ["u01", "u05"]),
    ({"address": {"$exists": True}}, ["u01", "u05", "u07", "u09"]),
    ({"nickname": {"$exists": True}}, ["u05"]),
    ({"nickname": None}, ALL),
    ({"tags": {"$contains": "x"}}, ["u02"]),  # u08's tags is the string "x", not a list
    ({"tags": {"$contains": "y"}}, ["u02", "u06"]),
    ({"tags": {"$contains": 10.0}}, ["u06"]),
    ({"tags": {"$contains": "10"}}, []),
    ({"tags": {"$contains": True}}, ["u10"]),
    ({"teams_size": {"$gt": 0.0}}, ["u09"]),
    ({"nope": {"$exists": False}}, ALL),
    ({"nope": "x"}, []),
    ({"nope": {"$ne": "x"}}, ALL),
]

COMBINATOR_CASES = [
    ({}, ALL),
    (None, ALL),
    ({"$or": [{"role": "moderator"}, {"age": {"$gt": 60.0}}]}, ["u06", "u08"]),
    ({"$and": [{"flag": True}, {"teams": {"$contains": "red"}}]}, ["u01", "u07", "u09"]),
    ({"flag": False, "$or": [{"role": "user"}, {"age": {"$exists": False}}]}, ["u02", "u04", "u08", "u10"]),
    ({"$or": [
        {"$and": [{"role": "admin"}, {"country": "USA"}]},
        {"$and": [{"status": "completed"}, {"$or": [{"age": {"$exists": False}}, {"age": {"$gt": 60.0}}]}]},
    ]}, ["u01", "u04", "u08"]),
    ({"$and": [{"$or": [{"name": "ann"}, {"name": "bob"}]}], "$or": [{"flag": False}]}, ["u02"]),
]


# One database per group of cases (creating a PostgreSQL database is the slow part); every
# case runs, and a failure lists each filter with what it matched instead.
@pytest.mark.parametrize("spec,cases", [
    (STRICT, COLUMN_CASES),
    (STRICT, DATETIME_CASES),
    (STRICT, ENUM_CASES),
    (STRICT, ARRAY_CASES),
    (WITH_CUSTOM, CUSTOM_CASES),
    (WITH_CUSTOM, COMBINATOR_CASES),
], ids=["columns", "datetimes", "enums", "arrays", "custom", "combinators"])
async def test_filter_matches_exactly(engine, spec, cases):
    wrong = []
    for filter_, expected in cases:
        got = await matching(engine, spec, filter_)
        if got != expected:
            wrong.append(f"{filter_}: got {got}, expected {expected}")
    assert not wrong, "\n".join(wrong)


MALFORMED = [
    (STRICT, {"foo": 1.0}, "filter.foo"),
    (STRICT, {"$and": [{"name": "a"}, {"foo": 1.0}]}, "filter.$and[1].foo"),
    (WITH_CUSTOM, {"status": {"$in": "draft"}}, "filter.status.$in"),
    (WITH_CUSTOM, {"status": {"$in": ["draft", "bogus"]}}, "filter.status.$in[1]"),
    (WITH_CUSTOM, {"status": {"$gt": "draft"}}, "filter.status.$gt"),  # enums have no order
    (WITH_CUSTOM, {"age": {"$gt": {"x": 1.0}}}, "filter.age.$gt"),
    (WITH_CUSTOM, {"age": "30"}, "filter.age"),
    (WITH_CUSTOM, {"age": {"$in": [1.0, True]}}, "filter.age.$in[1]"),
    (WITH_CUSTOM, {"$and": [{"name": "a"}, {"name": {"$foo": 1.0}}]}, "filter.$and[1].name.$foo"),
    (WITH_CUSTOM, {"$and": {"name": "a"}}, "filter.$and"),
    (WITH_CUSTOM, {"$or": []}, "filter.$or"),
    (WITH_CUSTOM, {"$or": [{"name": "a"}, "b"]}, "filter.$or[1]"),
    (WITH_CUSTOM, {"$nor": [{"name": "a"}]}, "filter.$nor"),
    (WITH_CUSTOM, {"name": {"$and": [{"name": "a"}]}}, "filter.name.$and"),
    (WITH_CUSTOM, {"created_at": True}, "filter.created_at"),
    (WITH_CUSTOM, {"created_at": {"$gte": "yesterday"}}, "filter.created_at.$gte"),
    (WITH_CUSTOM, {"created_at": {"$in": ["2024-01-01T00:00:00Z", 3.0]}}, "filter.created_at.$in[1]"),
    (WITH_CUSTOM, {"id": {"$ne": "u01"}}, "filter.id.$ne"),  # operators restricted per field
    (WITH_CUSTOM, {"name": {"$contains": "a"}}, "filter.name.$contains"),
    (WITH_CUSTOM, {"flag": 1.0}, "filter.flag"),
    (WITH_CUSTOM, {"flag": {"$gt": False}}, "filter.flag.$gt"),  # booleans have no order
    (WITH_CUSTOM, {"role": {"$exists": "yes"}}, "filter.role.$exists"),
    (WITH_CUSTOM, {"role": {"$gt": None}}, "filter.role.$gt"),
    (WITH_CUSTOM, {"teams": {"$contains": ["a"]}}, "filter.teams.$contains"),
    (WITH_CUSTOM, {"teams": {"$in": ["a", 1.0]}}, "filter.teams.$in[1]"),
    (WITH_CUSTOM, {"groups": {"$in": "g1"}}, "filter.groups.$in"),
    (WITH_CUSTOM, {"name": {}}, "filter.name"),
    (WITH_CUSTOM, {"country": {"$gt": True}}, "filter.country.$gt"),
    (WITH_CUSTOM, {"country": {"$eq": ["USA"]}}, "filter.country.$eq"),
    (WITH_CUSTOM, {"country": {"$in": ["USA", {"a": 1.0}]}}, "filter.country.$in[1]"),
    (WITH_CUSTOM, {"country": {"$contains": None}}, "filter.country.$contains"),
    (WITH_CUSTOM, {"country": {"$regex": "U.*"}}, "filter.country.$regex"),
    (WITH_CUSTOM, {"bad key!": 1.0}, "filter.bad key!"),
    (WITH_CUSTOM, {"address..city": 1.0}, "filter.address..city"),
    (WITH_CUSTOM, {"$or": [{"$and": [{"role": "admin"}, {"status": {"$in": [1.5]}}]}]},
     "filter.$or[0].$and[1].status.$in[0]"),
    (WITH_CUSTOM, ["name"], "filter"),
]


@pytest.mark.parametrize("spec,filter_,field", MALFORMED, ids=[case[2] for case in MALFORMED])
def test_malformed_filter_names_the_offending_path(spec, filter_, field):
    with pytest.raises(InvalidArgument) as caught:
        compile_filter(spec, filter_)
    assert [v.field for v in caught.value.violations] == [field]


def test_field_prefix_is_the_request_field():
    with pytest.raises(InvalidArgument) as caught:
        compile_filter(STRICT, {"$or": [{"foo": 1.0}]}, field_prefix="Filter")
    assert caught.value.violations[0].field == "Filter.$or[0].foo"


def test_unknown_field_lists_the_filterable_ones():
    with pytest.raises(InvalidArgument) as caught:
        compile_filter(STRICT, {"foo": 1.0})
    assert "created_at" in caught.value.violations[0].description


def test_enum_aliases_map_words_names_and_numbers():
    aliases = enum_aliases(CampaignStatus)
    assert aliases["in_progress"] == aliases["CAMPAIGN_STATUS_IN_PROGRESS"] == aliases[3] == "in_progress"
    assert "unspecified" not in aliases and 0 not in aliases
    assert enum_aliases(CampaignStatus, stored_as="number")["draft"] == 1


def test_field_needs_a_column_or_a_compile_function():
    with pytest.raises(ValueError):
        Field()
    with pytest.raises(ValueError):
        Field(people.c.name, operators={"$like"})
    with pytest.raises(ValueError):
        Field(people.c.name, operators={"$eq", "$contains"})
    with pytest.raises(ValueError):
        Field(people.c.status, Kind.ENUM)


# ---------------------------------------------------------------------------------------------
# Budgets (DESIGN §10.3): past each one the filter is refused naming where; at each one it runs.


def _nested(depth: int, leaf: dict) -> dict:
    """`depth` levels of $or, each a single-item list, around `leaf`."""
    for _ in range(depth):
        leaf = {"$or": [leaf]}
    return leaf


def _refused(filter_, field: str, spec: FilterSpec = WITH_CUSTOM) -> str:
    with pytest.raises(InvalidArgument) as caught:
        compile_filter(spec, filter_)
    [violation] = caught.value.violations
    assert (violation.field, violation.reason) == (field, "INVALID_FILTER"), violation
    return violation.description


def test_combinators_nest_at_most_10_levels():
    _refused(_nested(11, {"name": "ann"}), "filter" + ".$or[0]" * 10 + ".$or")


def test_a_level_holds_at_most_100_clauses():
    _refused({"$and": [{"name": "ann"}] * 101}, "filter.$and")
    _refused({f"k{i}": 1 for i in range(101)}, "filter")
    _refused({"$or": [{"name": "ann"}, {f"k{i}": 1 for i in range(101)}]}, "filter.$or[1]")


def test_in_and_nin_hold_at_most_10000_values():
    _refused({"name": {"$in": ["a"] * 10_001}}, "filter.name.$in")
    _refused({"$and": [{"score": {"$nin": [1] * 10_001}}]}, "filter.$and[0].score.$nin")


def test_a_filter_binds_a_bounded_number_of_sql_parameters():
    # 100 custom comparisons a level, three levels: each would run, all together could not.
    level = [{f"k{i}": i} for i in range(99)]
    description = _refused({"$or": [*level, {"$or": [*level, {"$or": level}]}]}, "filter")
    assert "parameters" in description


def test_a_struct_filter_is_at_most_4_mib_serialized():
    from google.protobuf import struct_pb2

    from herald.segment.v1 import directory_service_pb2 as ds
    from services.kit.filters import request_filter

    request = ds.QueryUsersRequest(filter=struct_pb2.Struct())
    request.filter.update({"name": {"$in": ["x" * 1000] * 4200}})
    with pytest.raises(InvalidArgument) as caught:
        request_filter(request)
    assert [v.field for v in caught.value.violations] == ["filter"]


async def test_filters_at_every_budget_run(engine):
    """Each budget at its limit, and all at once in one statement: the database accepts them
    (SQLite's 1,000-deep expression limit, 32,766 parameters), and they still mean what they say."""
    wide = [{"name": f"nobody{i}"} for i in range(99)]
    deep = _nested(9, {"$or": [*wide, {"name": "ann"}]})  # 10 levels, 100 clauses in the last
    nine = _nested(8, {"$or": [*wide, {"name": "ann"}]})
    many = {"$and": [{"created_at": {"$gte": "2000-01-01T00:00:00Z"}}] * 99 + [nine]}  # 100 a level, 10 deep
    long_in = {"name": {"$in": [f"n{i}" for i in range(9_999)] + ["bob"]}}
    teams = {"teams": {"$in": [f"t{i}" for i in range(9_999)] + ["yellow"]}}
    custom = {"score": {"$nin": list(range(10_000))}}
    assert await matching(engine, WITH_CUSTOM, deep) == ["u01"]
    assert await matching(engine, WITH_CUSTOM, many) == ["u01"]
    assert await matching(engine, WITH_CUSTOM, long_in) == ["u02"]
    assert await matching(engine, WITH_CUSTOM, teams) == ["u10"]
    assert await matching(engine, WITH_CUSTOM, custom) == but("u01", "u06", "u08")
    assert await matching(engine, WITH_CUSTOM, {"$or": [nine, long_in, teams, custom]}) == but("u06", "u08")


async def test_the_largest_filters_of_a_whole_audience_fit_one_statement(engine):
    """25 filters (a campaign's segments) each just within the parameter budget, OR-ed."""
    level = [{f"k{i}": i} for i in range(99)]
    largest = {"$or": [*level, {"$or": [*level, {"name": "ann"}]}]}
    compile_filter(WITH_CUSTOM, largest)  # within budget
    from sqlalchemy import or_
    async with engine.connect() as conn:
        stmt = select(people.c.id).where(or_(*(compile_filter(WITH_CUSTOM, largest) for _ in range(25))))
        assert list((await conn.scalars(stmt)).all()) == ["u01"]


@pytest.mark.parametrize("condition", [
    lambda: in_list(people.c.id, ["u02", "u05"]),
    lambda: and_(in_list(people.c.id, ["u02", "u05"]), people.c.flag.is_(False)),
    lambda: compile_filter(STRICT, {"id": {"$in": ["u02", "u05"]}}),
    lambda: compile_filter(STRICT, {"$and": [{"id": {"$in": ["u02", "u05"]}}, {"name": "bob"}]}),
], ids=["in_list", "in_list-and", "filter-in", "filter-and"])
async def test_a_list_of_ids_is_looked_up_by_the_index(engine, condition):
    """An id list bound as one parameter still reaches the planner as `id IN (…)`: SQLite
    searches the primary key for it instead of scanning every row (a Boolean function compared
    with 1 would hide it)."""
    if engine.dialect.name != "sqlite":
        pytest.skip("EXPLAIN QUERY PLAN is SQLite's")
    stmt = select(people.c.id).where(condition())
    async with engine.connect() as conn:
        compiled = stmt.compile(engine.sync_engine)
        plan = [row[-1] for row in await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}",
                                                              tuple(compiled.params.values()))]
    assert any(step.startswith("SEARCH people USING") for step in plan), plan
    assert not any(step.startswith("SCAN people") for step in plan), plan


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_a_datetime_that_leaves_years_1_to_9999_in_utc_is_refused(value):
    _refused({"created_at": {"$gt": value}}, "filter.created_at.$gt")
