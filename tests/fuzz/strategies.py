"""Hypothesis strategies for any Herald request, built by walking the message descriptors.

Every field can take a hostile value of its kind: strings empty, huge, unicode or with NUL;
numbers at their extremes; enum numbers no one defined; lists empty, short or past every cap;
nested messages; Structs with nested, deep and non-finite values; Timestamps out of range.
A `Realism` (tests/fuzz/world.py) offers, field by field, values that exist and pass
validation (ids of real users, valid filters, valid templates), so that a fair share of the
requests gets past validation to the logic behind it: each request is drawn whole in one of
three moods — plausible (realistic values only), mutant (realistic, a few fields hostile),
hostile (anything).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol

from google.protobuf import message_factory, struct_pb2, timestamp_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

# How deep nested messages are filled in (Campaign → User → Struct is three).
MAX_DEPTH = 2
INT32 = (-2**31, 2**31 - 1)
INT64 = (-2**63, 2**63 - 1)
# Timestamp seconds of 0001-01-01 and 9999-12-31T23:59:59 (what RFC 3339 can write).
MIN_SECONDS, MAX_SECONDS = -62_135_596_800, 253_402_300_799

ODD_STRINGS = ["", " ", "\x00", "a\x00b", "ü" * 300, "🙂🙂", "a:b", ":", "messaging:", "$in", "null", "' OR 1=1 --",
               "%s%n", "../../etc/passwd", "{{", "{% for %}", "\u202e", "\r\n", "a" * 256, "a" * 255]


def _sizes(*sizes: int) -> st.SearchStrategy[int]:
    return st.sampled_from(sizes)


# Sizes past the caps (ids 255, names 128, texts 5,000, template sources 20,000, filters 4 MiB)
# are built by repetition: hypothesis would draw such strings character by character.
huge_strings = _sizes(1_001, 5_001, 20_001, 2**20).map(lambda n: "x" * n)
strings = st.one_of(st.sampled_from(ODD_STRINGS), st.text(max_size=30), huge_strings)
finite_numbers = st.one_of(st.integers(-2**53, 2**53), st.floats(allow_nan=False, allow_infinity=False))
numbers = st.one_of(finite_numbers, st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -0.0, 2.0**63]))
struct_keys = st.one_of(st.sampled_from(["a", "score", "country", "$in", "$and", "", "a.b", "\x00"]),
                        st.text(max_size=8))


def _nested(depth: int) -> dict[str, Any]:
    """A Struct `depth` levels deep: three messages a level (Struct, map entry, Value), and
    protobuf copies and parses at most 100 (a request nests it a few levels down)."""
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth):
        value = {"a": value}
    return value


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), numbers, st.sampled_from(ODD_STRINGS), st.text(max_size=30)),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(struct_keys, children, max_size=4)),
    max_leaves=12)
json_objects = st.one_of(
    st.dictionaries(struct_keys, json_values, max_size=5),
    _sizes(10, 20, 28).map(_nested),
    _sizes(1_001, 100_000).map(lambda n: {f"k{i}": i for i in range(n)}))


def to_struct(data: dict[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(data)
    return struct


def to_value(data: Any) -> struct_pb2.Value:
    value = struct_pb2.Value()
    if isinstance(data, dict):
        value.struct_value.update(data)
    elif isinstance(data, list):
        value.list_value.extend(data)
    elif data is None:
        value.null_value = struct_pb2.NULL_VALUE
    elif isinstance(data, bool):
        value.bool_value = data
    elif isinstance(data, str):
        value.string_value = data
    else:
        value.number_value = data
    return value


timestamps = st.builds(
    timestamp_pb2.Timestamp,
    seconds=st.one_of(st.integers(MIN_SECONDS, MAX_SECONDS),
                      st.sampled_from([MIN_SECONDS - 1, MAX_SECONDS + 1, INT64[0], INT64[1]])),
    nanos=st.one_of(st.integers(0, 999_999_999), st.sampled_from([-1, 10**9, INT32[1]])))

# The well-known types, by their own strategies rather than by walking their fields.
WELL_KNOWN: dict[str, st.SearchStrategy[Message]] = {
    "google.protobuf.Struct": json_objects.map(to_struct),
    "google.protobuf.Value": json_values.map(to_value),
    "google.protobuf.Timestamp": timestamps,
}


class Realism(Protocol):
    def __call__(self, message: Descriptor, field: FieldDescriptor) -> st.SearchStrategy[Any] | None:
        """Realistic values of `field` of `message` (a list for a repeated field), or None to
        leave it unset when a request is drawn plausible."""


def scalars(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    """Any value of a scalar field's type, its edges first among equals."""
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        return strings
    if kind == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=64)
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.floats(width=64 if kind == FieldDescriptor.TYPE_DOUBLE else 32)
    if kind == FieldDescriptor.TYPE_ENUM:
        defined = [value.number for value in field.enum_type.values]
        return st.sampled_from(defined + [max(defined) + 1, 99, -1, INT32[1]])
    low, high = INT64 if kind in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64) else INT32
    return st.one_of(st.integers(low, high), st.sampled_from([0, -1, 1, 100, 1_001, 10_001, low, high]))


def _hostile_list(field: FieldDescriptor, element: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
    """Short lists, and lists just past the caps (25, 1,000 and 10,000) of small values (of a
    message, its empty instance; of strings, distinct ids) so a request stays a few MiB."""
    if field.message_type is not None:
        small = st.just(message_factory.GetMessageClass(field.message_type)())
    elif field.type == FieldDescriptor.TYPE_STRING:
        small = st.sampled_from(ODD_STRINGS[:-2])
    else:
        small = element
    long_lists = [st.tuples(small, _sizes(26, 1_001, 10_001)).map(lambda pair: [pair[0]] * pair[1])]
    if field.type == FieldDescriptor.TYPE_STRING:
        long_lists.append(_sizes(26, 1_001, 10_001).map(lambda n: [f"id-{i}" for i in range(n)]))
    return st.one_of(st.lists(element, max_size=4), *long_lists)


class Requests:
    """Draws messages of any type: `Requests(realism, hostility, exclusive).of(descriptor)`.
    `hostility` adds hostile values of a field's meaning to those of its type; `exclusive` names
    pairs of fields a plausible message sets one of at most (`segment_ids` or `user_ids`)."""

    def __init__(self, realism: Realism, hostility: Realism, exclusive: Sequence[tuple[str, str]]) -> None:
        self.realism = realism
        self.hostility = hostility
        self.exclusive = exclusive

    def of(self, descriptor: Descriptor) -> st.SearchStrategy[Message]:
        plausible, mutant = self.plausible(descriptor, 0), self.mutant(descriptor, 0)
        return st.one_of(plausible, plausible, mutant, mutant, self.hostile_message(descriptor, 0))

    def plausible(self, descriptor: Descriptor, depth: int) -> st.SearchStrategy[Message]:
        """Realistic values where there are some, nested messages plausible too, the rest unset."""
        def value(field: FieldDescriptor) -> st.SearchStrategy[Any]:
            realistic = self.realism(descriptor, field)
            if realistic is None and _composite(field) and depth < MAX_DEPTH:
                nested = self.plausible(field.message_type, depth + 1)
                return st.lists(nested, min_size=1, max_size=2) if field.is_repeated else nested
            return st.none() if realistic is None else realistic
        pairs = [pair for pair in self.exclusive if set(pair) <= set(descriptor.fields_by_name)]
        dropped = st.tuples(*(st.sampled_from(pair) for pair in pairs))
        return st.tuples(st.tuples(*map(value, descriptor.fields)), dropped).map(
            lambda drawn: _filled(descriptor, drawn[0], unset=drawn[1]))

    def mutant(self, descriptor: Descriptor, depth: int) -> st.SearchStrategy[Message]:
        """A plausible message with one field hostile (in a nested message, one of its fields)."""
        if not descriptor.fields:
            return self.plausible(descriptor, depth)

        def hostile_value(field: FieldDescriptor) -> st.SearchStrategy[tuple[FieldDescriptor, Any]]:
            value = self.hostile(descriptor, field, depth)
            if _composite(field) and not field.is_repeated and depth < MAX_DEPTH:
                value = st.one_of(value, self.mutant(field.message_type, depth + 1))
            return st.tuples(st.just(field), value)
        return st.tuples(self.plausible(descriptor, depth), st.sampled_from(list(descriptor.fields)).flatmap(
            hostile_value)).map(lambda drawn: _replaced(*drawn))

    def hostile_message(self, descriptor: Descriptor, depth: int) -> st.SearchStrategy[Message]:
        """Any field set or not, to anything of its type (or a realistic value now and then)."""
        def value(field: FieldDescriptor) -> st.SearchStrategy[Any]:
            realistic = self.realism(descriptor, field)
            choices = [st.none(), self.hostile(descriptor, field, depth)]
            return st.one_of(*choices, *([realistic] if realistic is not None else []))
        return st.tuples(*map(value, descriptor.fields)).map(lambda values: _filled(descriptor, values))

    def hostile(self, message: Descriptor, field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
        meant = self.hostility(message, field)
        typed = self.typed(field, depth)
        return typed if meant is None else st.one_of(typed, meant)

    def typed(self, field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
        """Hostile values of the field's type."""
        if field.message_type is None:
            value = scalars(field)
        elif field.message_type.full_name in WELL_KNOWN:
            value = WELL_KNOWN[field.message_type.full_name]
        elif depth < MAX_DEPTH:
            value = self.hostile_message(field.message_type, depth + 1)
        else:
            value = st.just(message_factory.GetMessageClass(field.message_type)())
        return _hostile_list(field, value) if field.is_repeated else value


def _composite(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.full_name not in WELL_KNOWN


def _filled(descriptor: Descriptor, values: Sequence[Any], unset: Sequence[str] = ()) -> Message:
    """A message of `descriptor` with the values drawn for its fields (None: left unset)."""
    message = message_factory.GetMessageClass(descriptor)()
    for field, value in zip(descriptor.fields, values):
        if value is not None and field.name not in unset:
            _set(message, field, value)
    return message


def _replaced(message: Message, mutation: tuple[FieldDescriptor, Any]) -> Message:
    field, value = mutation
    message.ClearField(field.name)
    if value is not None:
        _set(message, field, value)
    return message


def _set(target: Message, field: FieldDescriptor, value: Any) -> None:
    if field.is_repeated:
        getattr(target, field.name).extend(value)
    elif field.message_type is not None:
        getattr(target, field.name).CopyFrom(value)
    else:
        setattr(target, field.name, value)

