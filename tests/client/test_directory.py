"""Users, channels and devices through `HeraldClient`, against the real segment service: plain
dicts in, generated messages out, keyset pages as async iterators, streaming imports."""

from __future__ import annotations

from datetime import datetime, timezone

from herald.segment.v1 import directory_pb2

from client.conftest import users


async def test_users_upsert_get_query_iterate_and_delete(herald):
    stored = await herald.upsert_users([
        {"id": "ann", "name": "Ann", "role": "admin", "teams": ["red"], "custom": {"country": "NL", "age": 31}},
        directory_pb2.User(id="bob", name="Bob", custom={"country": "DE"}),  # a message passes as it is
        {"id": "cat", "name": "Cat", "custom": {"country": "NL"}},
    ])
    assert [u.id for u in stored] == ["ann", "bob", "cat"]
    assert stored[0].custom["country"] == "NL" and list(stored[0].teams) == ["red"]

    found = await herald.get_users(["ann", "ghost"])
    assert [u.name for u in found.users] == ["Ann"] and list(found.missing_ids) == ["ghost"]

    dutch = await herald.query_users({"country": "NL"}, sort=["-name"])
    assert [u.id for u in dutch.users] == ["cat", "ann"]
    first = await herald.query_users(sort=[{"field": "id", "direction": 1}], limit=2)
    rest = await herald.query_users(sort=["id"], limit=2, next=first.next)
    assert [u.id for u in first.users] == ["ann", "bob"] and [u.id for u in rest.users] == ["cat"]
    back = await herald.query_users(sort=["id"], limit=2, prev=rest.prev)
    assert [u.id for u in back.users] == ["ann", "bob"]
    since = await herald.query_users({"created_at": {"$gte": datetime(2000, 1, 1, tzinfo=timezone.utc)}})
    assert len(since.users) == 3  # a datetime inside a filter goes as RFC 3339

    assert [u.id async for u in herald.iter_users(sort=["-id"], page_size=1)] == ["cat", "bob", "ann"]
    assert [u.id async for u in herald.iter_users({"role": "admin"})] == ["ann"]

    assert await herald.delete_users(["bob", "ghost"]) == 1
    assert [u.id async for u in herald.iter_users(sort=["id"])] == ["ann", "cat"]


async def test_import_users_streams_a_plain_generator_in_chunks(herald):
    def people():
        for i in range(25):
            yield {"id": f"u{i:02}", "name": f"User {i}"}

    assert await herald.import_users(people(), chunk_size=10) == 25
    assert len([u async for u in herald.iter_users(page_size=7)]) == 25


async def test_import_users_from_an_async_generator_reports_progress(herald):
    async def people():
        for i in range(23):
            yield directory_pb2.User(id=f"a{i:02}", name=f"A {i}") if i % 2 else {"id": f"a{i:02}", "name": f"A {i}"}

    heard: list[int] = []
    assert await herald.import_users(people(), chunk_size=10, on_progress=heard.append) == 23
    assert heard == [10, 20, 23]
    assert (await herald.get_users(["a00", "a01", "a22"])).missing_ids == []


async def test_channels_upsert_query_and_iterate(herald):
    await users(herald, "ann", "bob", "boss")
    stored = await herald.upsert_channels([
        {"type": "messaging", "id": "ann-boss", "created_by_id": "boss", "custom": {"topic": "hi"},
         "members": [{"user_id": "ann"}, {"user_id": "boss", "channel_role": "owner"}]},
        {"type": "team", "id": "all", "team": "red", "members": [{"user_id": "ann"}, {"user_id": "bob"}]},
    ])
    assert [c.cid for c in stored] == ["messaging:ann-boss", "team:all"]

    bobs = await herald.query_channels({"members": {"$in": ["bob"]}})
    assert [c.cid for c in bobs.channels] == ["team:all"]
    assert sorted(m.user_id for m in bobs.channels[0].members) == ["ann", "bob"]
    assert [c.cid async for c in herald.iter_channels(sort=["-cid"], page_size=1)] == ["team:all", "messaging:ann-boss"]
    assert [c.cid async for c in herald.iter_channels({"topic": "hi"})] == ["messaging:ann-boss"]


async def test_devices_upsert_list_and_delete(make_system):
    _, herald = await make_system(names=("segment",), push_allow_private=True)
    await users(herald, "ann", "bob")
    [phone, hook] = await herald.upsert_devices([
        {"user_id": "ann", "provider": "http", "endpoint": "http://127.0.0.1:9/ann"},  # enum by short name
        {"user_id": "bob", "provider": "DEVICE_PROVIDER_HTTP", "endpoint": "http://127.0.0.1:9/bob"},
    ])
    assert phone.id and phone.provider == directory_pb2.DEVICE_PROVIDER_HTTP and hook.user_id == "bob"

    listed = await herald.list_devices(["ann", "bob"])
    assert sorted((d.user_id, d.endpoint) for d in listed) == [("ann", "http://127.0.0.1:9/ann"),
                                                              ("bob", "http://127.0.0.1:9/bob")]
    assert await herald.delete_devices("ann", [phone.id]) == 1
    assert [d.user_id for d in await herald.list_devices(["ann", "bob"])] == ["bob"]
