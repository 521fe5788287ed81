"""Segments through `HeraldClient`, named as the reference SDK names them: create, get, update,
delete, query and iterate; manual targets added, checked, paged and deleted; audiences counted."""

from __future__ import annotations

import pytest

from harness import eventually
from herald.segment.v1 import segment_pb2
from services.client.errors import NotFound

from client.conftest import users


async def test_a_manual_segment_its_targets_and_its_audience(herald):
    await users(herald, "ann", "bob", "cat", "boss")
    segment = await herald.create_segment("user", id="friends", name="Friends", description="manual")
    assert (segment.id, segment.type, segment.size) == ("friends", segment_pb2.SEGMENT_TYPE_USER, 0)

    grown = await herald.add_segment_targets("friends", ["ann", "bob", "cat", "boss", "ghost"])
    assert grown.size == 5
    assert await herald.segment_target_exists("friends", "bob") is True
    assert await herald.segment_target_exists("friends", "dan") is False

    page = await herald.query_segment_targets("friends", limit=2)
    assert [t.target_id for t in page.targets] == ["ann", "bob"] and page.next
    assert [t.target_id for t in (await herald.query_segment_targets("friends", next=page.next, limit=2)).targets] \
        == ["boss", "cat"]
    assert [t.target_id async for t in herald.iter_segment_targets("friends", sort=["-target_id"], page_size=2)] \
        == ["ghost", "cat", "boss", "bob", "ann"]
    assert [t.target_id async for t in herald.iter_segment_targets("friends", {"target_id": {"$gt": "boss"}})] \
        == ["cat", "ghost"]

    assert (await herald.delete_segment_targets("friends", ["cat", "ghost"])).size == 3
    # The sender is left out of the audience, and users are deduplicated across segments and lists.
    assert await herald.count_recipients(segment_ids=["friends"], sender_id="boss") == 2
    assert await herald.count_recipients(user_ids=["ann", "bob", "ann"]) == 2


async def test_filter_segments_update_query_iterate_and_delete(herald):
    await herald.upsert_users([{"id": "ann", "name": "Ann", "custom": {"country": "NL"}},
                               {"id": "bob", "name": "Bob", "custom": {"country": "DE"}},
                               {"id": "cat", "name": "Cat", "custom": {"country": "NL"}}])
    dutch = await herald.create_segment(segment_pb2.SEGMENT_TYPE_USER, id="dutch", name="Dutch",
                                        filter={"country": "NL"})
    assert dutch.filter["country"] == "NL"
    await eventually(lambda: herald.get_segment("dutch"), lambda s: s.size == 2, what="the filter segment's size")
    everyone = await herald.create_segment("USER", name="Everyone", all_users=True)  # a generated id
    assert everyone.id and everyone.all_users
    await herald.create_segment("channel", id="rooms", name="Rooms", all_sender_channels=True)

    renamed = await herald.update_segment("dutch", name="Nederland", filter={"country": {"$in": ["NL", "DE"]}})
    assert (renamed.name, renamed.description) == ("Nederland", "")
    await eventually(lambda: herald.get_segment("dutch"), lambda s: s.size == 3, what="the size after the update")
    described = await herald.update_segment("dutch", description="only this changes")
    assert (described.name, described.description) == ("Nederland", "only this changes")

    users_only = await herald.query_segments({"type": "user"}, sort=["name"])
    assert [s.name for s in users_only.segments] == ["Everyone", "Nederland"]
    assert [s.id async for s in herald.iter_segments(sort=["id"], page_size=1)] == sorted(
        ["dutch", "rooms", everyone.id])

    await herald.delete_segment("rooms")
    with pytest.raises(NotFound):
        await herald.get_segment("rooms")
    assert [s.id async for s in herald.iter_segments({"all_users": True})] == [everyone.id]
