"""Revision 0003 of the segment schema: NaN and ±Infinity stored before requests were checked
(only SQLite could hold them) stop breaking every custom-field filter once the service migrates.
The bad rows are written straight into a database at revision 0002, as the old service did."""

from __future__ import annotations

import dataclasses

import pytest
from google.protobuf import struct_pb2
from sqlalchemy import text

from harness import client_channel, serving, test_settings
from herald.segment.v1 import directory_pb2, directory_service_pb2 as ds, directory_service_pb2_grpc
from migrations.helpers import SCHEMAS, upgrade_to
from services.segment_svc.app import SegmentApp
from services.kit.db import make_engine

T = "2026-07-01 12:00:00.000000"  # as SQLAlchemy stores a UTC time on SQLite
# What the old service wrote: Python's json (NaN, Infinity) in the column, the message as sent.
USERS = [("u1", '{"score":NaN,"plan":"pro"}', {"score": float("nan"), "plan": "pro"}),
         ("u2", '{"score":7,"deep":{"x":[1,-Infinity]}}', {"score": 7, "deep": {"x": [1, float("-inf")]}}),
         ("u3", '{"score":9}', {"score": 9})]


def _doc(user_id: str, custom: dict) -> bytes:
    user = directory_pb2.User(id=user_id, name=user_id, custom=struct_pb2.Struct())
    user.custom.update(custom)
    return user.SerializeToString()


async def test_non_finite_numbers_stored_before_become_null(new_db_url, tmp_path):
    url = await new_db_url("segment")
    if not url.startswith("sqlite"):
        pytest.skip("PostgreSQL's JSONB never held NaN or Infinity")
    engine = make_engine(url)
    await upgrade_to(engine, SCHEMAS["segment"], "0002")
    async with engine.begin() as conn:
        for user_id, custom_json, custom in USERS:
            await conn.execute(text("INSERT INTO users VALUES (:id, :id, 'user', '[]', :custom, :doc, :t, :t)"),
                               {"id": user_id, "custom": custom_json, "doc": _doc(user_id, custom), "t": T})
        await conn.execute(text("INSERT INTO channels VALUES ('m:c', 'm', 'c', '', :custom, 'u1', :t, :t)"),
                           {"custom": '{"w":Infinity}', "t": T})
    await engine.dispose()

    settings = dataclasses.replace(test_settings(tmp_path), segment_db_url=url)
    async with serving(SegmentApp(settings, make_engine(url)), settings) as running:
        channel = client_channel(running.port)
        directory = directory_service_pb2_grpc.DirectoryServiceStub(channel)
        found = await directory.QueryUsers(ds.QueryUsersRequest(filter=_struct({"score": {"$gte": 7}})))
        assert [u.id for u in found.users] == ["u2", "u3"]
        missing = await directory.QueryUsers(ds.QueryUsersRequest(filter=_struct({"score": None})))
        assert [u.id for u in missing.users] == ["u1"]
        assert missing.users[0].custom["plan"] == "pro"
        assert missing.users[0].custom.fields["score"].WhichOneof("kind") == "null_value"
        deep = await directory.QueryUsers(ds.QueryUsersRequest(filter=_struct({"score": 7})))
        assert list(deep.users[0].custom["deep"]["x"]) == [1, None]
        channels = await directory.QueryChannels(ds.QueryChannelsRequest(filter=_struct({"w": None})))
        assert [c.cid for c in channels.channels] == ["m:c"]
        await channel.close()


def _struct(data: dict) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(data)
    return struct
