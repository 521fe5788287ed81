"""`herald users import|list|get`: JSON Lines and CSV files streamed into the directory, tables
and JSON lines out, and a bad file, a refused user or a usage mistake each told in one line."""

from __future__ import annotations

import json

from harness import run_herald


async def test_import_jsonl_and_csv_then_list_and_get(system, herald, tmp_path):
    jsonl = tmp_path / "users.jsonl"
    jsonl.write_text('{"id": "boss", "name": "Boss", "role": "admin"}\n'
                     '\n'  # blank lines are skipped
                     '{"id": "ann", "name": "Ann", "teams": ["red"], "custom": {"country": "NL"}}\n'
                     '{"id": "bob", "name": "Bob", "country": "NL", "plan": "pro"}\n')
    csv = tmp_path / "more.csv"
    csv.write_text("id,name,role,teams,country,plan\n"
                   "cat,Cat,,red; blue,DE,\n"
                   '"dan","Dan, Jr.",user,,NL,free\n')

    done = await run_herald(system, "users", "import", str(jsonl))
    assert (done.code, done.out.strip(), done.err) == (0, "imported 3 users from users.jsonl", "")
    done = await run_herald(system, "users", "import", str(csv), "--json", "--chunk-size", "1")
    assert done.code == 0 and done.json() == [{"file": str(csv), "imported": 2}], done

    users = {user.id: user async for user in herald.iter_users()}
    assert set(users) == {"boss", "ann", "bob", "cat", "dan"}
    assert dict(users["bob"].custom) == {"country": "NL", "plan": "pro"}  # other keys go into custom
    assert list(users["cat"].teams) == ["red", "blue"] and dict(users["cat"].custom) == {"country": "DE"}
    assert users["dan"].name == "Dan, Jr." and users["dan"].role == "user" and list(users["dan"].teams) == []

    listed = await run_herald(system, "users", "list", "--filter", '{"country": "NL"}', "--sort=-name", "--json")
    assert listed.code == 0 and [u["id"] for u in listed.json()] == ["dan", "bob", "ann"]
    assert listed.json()[0]["custom"] == {"country": "NL", "plan": "free"}

    table = await run_herald(system, "users", "list", "--limit", "2", "--sort", "id")
    lines = table.out.splitlines()
    assert table.code == 0 and lines[0].split() == ["ID", "NAME", "ROLE", "TEAMS", "CUSTOM", "CREATED"]
    assert [line.split()[0] for line in lines[1:]] == ["ann", "bob"]
    assert "the first 2 users; --limit 0 shows all" in table.err

    # A file `users list --json` wrote imports again as it is.
    again = tmp_path / "again.jsonl"
    again.write_text(listed.out)
    assert (await run_herald(system, "users", "import", str(again))).out.strip() == "imported 3 users from again.jsonl"

    got = await run_herald(system, "users", "get", "cat", "ghost", "ann")
    assert got.code == 1 and got.err == "herald: NOT_FOUND: no user ghost\n"
    assert [line.split()[0] for line in got.out.splitlines()[1:]] == ["ann", "cat"]
    assert "red, blue" in got.out and '{"country": "DE"}' in got.out
    got = await run_herald(system, "users", "get", "ann", "--json")
    assert got.code == 0 and got.json()[0]["teams"] == ["red"]


async def test_a_bad_file_or_a_refused_user_ends_the_import_naming_the_line(system, herald, tmp_path):
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"id": "x1"}\n{"id": "x2"}\n{"id": \n{"id": "x4"}\n')
    done = await run_herald(system, "users", "import", str(broken))
    assert done.code == 1 and done.out == ""
    assert done.err == ("herald: broken.jsonl:3: not JSON (Expecting value at column 7); "
                        "the 2 users before it were imported\n")
    assert len((await herald.get_users(["x1", "x2", "x4"])).users) == 2

    refused = tmp_path / "refused.csv"
    refused.write_text("id,name\ny1,Y1\ny2,Y2\n,Nobody\ny4,Y4\n")
    done = await run_herald(system, "users", "import", str(refused), "--chunk-size", "2")
    assert done.code == 1 and len(done.err.splitlines()) == 1, done.err
    assert done.err.startswith("herald: INVALID_ARGUMENT: users[0].id: is required")
    assert "refused.csv line 4" in done.err  # the file's line, not the chunk's index

    not_a_user = tmp_path / "list.jsonl"
    not_a_user.write_text('["ann"]\n')
    done = await run_herald(system, "users", "import", str(not_a_user))
    assert (done.code, done.err) == (1, "herald: list.jsonl:1: not a JSON object; nothing was imported\n")
    no_id = tmp_path / "no_id.csv"
    no_id.write_text("name,role\nAnn,user\n")
    done = await run_herald(system, "users", "import", str(no_id))
    assert (done.code, done.err) == (1, "herald: no_id.csv:1: the header row has no id column; nothing was imported\n")

    # Usage mistakes: a file that is not there, a format the name does not tell, a bad filter.
    unknown = tmp_path / "users.txt"
    unknown.write_text('{"id": "z"}\n')
    for args in (["users", "import", str(tmp_path / "missing.csv")], ["users", "import", str(unknown)],
                 ["users", "list", "--filter", "{country: NL}"], ["users", "get"]):
        done = await run_herald(system, *args)
        assert done.code == 2 and done.out == "", (args, done)
    assert "--format" in (await run_herald(system, "users", "import", str(unknown))).err
    done = await run_herald(system, "users", "import", str(unknown), "--format", "jsonl")
    assert done.code == 0 and "imported 1 user from users.txt" in done.out

    bad_filter = await run_herald(system, "users", "list", "--filter", json.dumps({"name": {"$regex": "A"}}))
    assert bad_filter.code == 1
    assert bad_filter.err.startswith("herald: INVALID_ARGUMENT: filter.name.$regex: unknown operator")
