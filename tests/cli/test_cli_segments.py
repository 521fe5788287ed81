"""`herald segments create|get|list|add-targets|remove-targets|targets|delete` through the entry
point, with what the service refuses and the usage mistakes."""

from __future__ import annotations

import asyncio

from harness import eventually, run_herald


async def test_segments_from_create_to_delete(system, herald, tmp_path):
    await herald.upsert_users([{"id": "ann", "name": "Ann", "custom": {"country": "NL"}},
                               {"id": "bob", "name": "Bob", "custom": {"country": "NL"}},
                               {"id": "cat", "name": "Cat", "custom": {"country": "DE"}}])

    dutch = await run_herald(system, "segments", "create", "--id", "dutch", "--name", "Dutch users",
                             "--filter", '{"country": "NL"}', "--description", "from the Netherlands")
    details = dict(line.split(None, 1) for line in dutch.out.splitlines())
    assert dutch.code == 0, dutch.err
    assert {k: details[k].strip() for k in ("id", "type", "name", "description", "audience")} == {
        "id": "dutch", "type": "user", "name": "Dutch users", "description": "from the Netherlands",
        "audience": '{"country": "NL"}'}
    vip = await run_herald(system, "segments", "create", "--id", "vip", "--name", "VIPs", "--json")
    assert vip.code == 0 and vip.json()[0]["type"] == "SEGMENT_TYPE_USER" and vip.json()[0]["size"] == 0
    everyone = await run_herald(system, "segments", "create", "--all-users", "--json")
    assert everyone.code == 0 and everyone.json()[0]["all_users"] is True and everyone.json()[0]["id"]

    added = await run_herald(system, "segments", "add-targets", "vip", "ann", "bob")
    assert (added.code, added.out) == (0, "added 2 targets to segment vip (size 2)\n")
    listing = tmp_path / "targets.txt"
    listing.write_text("# our best users\ncat\n\ndan\n")
    added = await run_herald(system, "segments", "add-targets", "vip", "--file", str(listing), "--json")
    assert added.code == 0 and added.json()[0]["size"] == 4
    removed = await run_herald(system, "segments", "remove-targets", "vip", "dan")
    assert (removed.code, removed.out) == (0, "removed 1 target from segment vip (size 3)\n")

    targets = await run_herald(system, "segments", "targets", "vip")
    assert targets.code == 0
    assert [line.split()[0] for line in targets.out.splitlines()] == ["TARGET", "ann", "bob", "cat"]
    targets = await run_herald(system, "segments", "targets", "vip", "--limit", "1", "--json")
    assert [t["target_id"] for t in targets.json()] == ["ann"] and "the first 1 targets" in targets.err

    # The filter segment's size is counted in the background.
    await eventually(lambda: herald.get_segment("dutch"), lambda s: s.size == 2, what="dutch's size 2")
    listed = await run_herald(system, "segments", "list", "--sort", "id")
    rows = {line.split()[0]: line for line in listed.out.splitlines()[1:]}
    assert listed.code == 0 and listed.out.splitlines()[0].split() == ["ID", "TYPE", "NAME", "AUDIENCE", "SIZE",
                                                                        "CREATED"]
    assert {"dutch", "vip", everyone.json()[0]["id"]} == set(rows)
    assert rows["dutch"].split()[:6] == ["dutch", "user", "Dutch", "users", '{"country":', '"NL"}']
    assert "targets" in rows["vip"] and "all users" in rows[everyone.json()[0]["id"]]
    listed = await run_herald(system, "segments", "list", "--filter", '{"name": "VIPs"}', "--json")
    assert [s["id"] for s in listed.json()] == ["vip"]

    got = await run_herald(system, "segments", "get", "dutch", "--json")
    assert got.code == 0 and got.json()[0]["filter"] == {"country": "NL"} and got.json()[0]["size"] == 2

    deleted = await run_herald(system, "segments", "delete", "vip", "dutch")
    assert (deleted.code, deleted.out) == (0, "deleted segment vip\ndeleted segment dutch\n")
    gone = await run_herald(system, "segments", "get", "vip")
    assert (gone.code, gone.out) == (1, "") and gone.err.startswith("herald: NOT_FOUND: ")
    assert len(gone.err.splitlines()) == 1


async def test_segments_refused_and_usage_mistakes(system, herald):
    bad_filter, bad_type, bad_json, no_targets, unknown = await asyncio.gather(
        run_herald(system, "segments", "create", "--filter", '{"country": {"$regex": "N"}}'),
        run_herald(system, "segments", "create", "--type", "group"),
        run_herald(system, "segments", "create", "--filter", '["country"]'),
        run_herald(system, "segments", "add-targets", "vip"),
        run_herald(system, "segments", "frobnicate"))
    # The service refuses: one line naming the field, exit 1.
    assert bad_filter.code == 1 and bad_filter.out == ""
    assert bad_filter.err.startswith("herald: INVALID_ARGUMENT: filter.country.$regex: unknown operator")
    assert bad_filter.err.endswith("(INVALID_FILTER)\n") and len(bad_filter.err.splitlines()) == 1
    # Usage mistakes: click's message, exit 2.
    for done, said in ((bad_type, "--type"), (bad_json, "must be a JSON object"), (no_targets, "--file"),
                       (unknown, "frobnicate")):
        assert done.code == 2 and done.out == "" and said in done.err, done

    long_name = await run_herald(system, "segments", "create", "--name", "x" * 200)
    assert long_name.code == 1 and long_name.err.startswith("herald: INVALID_ARGUMENT: name: ")
