"""`herald campaigns create|get|list|start|stop|delete|watch|preview|test-send`: a campaign from a
JSON file to its end, watched as lines and as JSON (exit 0 completed, 3 stopped), a recipient
previewed, test messages sent (again with the request id: nobody twice), and every kind of failure
as one line with a non-zero exit."""

from __future__ import annotations

import asyncio
import json
import os

from harness import DEADLINE_S, TEST_SECRET, Ran, cli_env, run_herald, start_herald

WELCOME = {
    "id": "welcome", "name": "Welcome", "sender_id": "boss", "segment_ids": ["dutch"],
    "message_template": {"text": "Hi {{ receiver.name }}, {{ sender.name }} here!"},
    "channel_template": {"type": "messaging", "id": "{{ receiver.id }}-{{ sender.id }}"},
    "create_channels": True,
}


async def test_a_campaign_from_a_file_to_completed(system, herald, tmp_path):
    await herald.upsert_users([{"id": "boss", "name": "Boss"},
                               {"id": "ann", "name": "Ann", "custom": {"country": "NL"}},
                               {"id": "bob", "name": "Bob", "custom": {"country": "NL"}}])
    await herald.create_segment("user", id="dutch", filter={"country": "NL"})
    file = tmp_path / "welcome.json"
    file.write_text(json.dumps(WELCOME, indent=2))

    created = await run_herald(system, "campaigns", "create", str(file))
    details = {line.split(None, 1)[0]: line.split(None, 1)[1].strip() for line in created.out.splitlines()}
    assert created.code == 0, created.err
    assert details["id"] == "welcome" and details["status"] == "draft" and details["sender"] == "boss"
    assert details["audience"] == "segments dutch" and details["message"] == WELCOME["message_template"]["text"]

    drafts = await run_herald(system, "campaigns", "list", "--status", "draft", "--json")
    assert drafts.code == 0 and [c["id"] for c in drafts.json()] == ["welcome"]
    assert drafts.json()[0]["status"] == "CAMPAIGN_STATUS_DRAFT"

    started = await run_herald(system, "campaigns", "start", "welcome")
    assert (started.code, started.out) == (0, "started campaign welcome (follow it: herald campaigns watch welcome)\n")
    watched = await run_herald(system, "campaigns", "watch", "welcome", "--json")
    updates = watched.json()
    assert watched.code == 0 and updates[-1]["status"] == "CAMPAIGN_STATUS_COMPLETED", watched
    assert updates[-1]["stats"]["stats_messages_sent"] == 2 and updates[-1]["stats"]["progress"] == 1.0
    # In a pipe (not a terminal) the watch prints lines, as `herald watch` always has.
    lines = await run_herald(system, "campaigns", "watch", "welcome")
    assert lines.code == 0 and lines.out.splitlines() == [
        "completed   100.0%  sent 2  skipped 0  failed 0  of 2  channels created 2  read 0"]

    got = await run_herald(system, "campaigns", "get", "welcome")
    assert got.code == 0 and "progress          100.0%: sent 2, skipped 0, failed 0 of 2" in got.out
    table = await run_herald(system, "campaigns", "list")
    header, row = table.out.splitlines()
    assert header.split() == ["ID", "NAME", "STATUS", "SENDER", "AUDIENCE", "PROGRESS", "SENT", "SKIPPED", "FAILED",
                              "TOTAL", "CREATED"]
    assert row.split()[:10] == ["welcome", "Welcome", "completed", "boss", "segments", "dutch", "100.0%", "2", "0", "0"]

    # What the service refuses: one line on stderr, the field or the state named, exit 1.
    again = await run_herald(system, "campaigns", "start", "welcome")
    assert again.code == 1 and again.err.startswith("herald: FAILED_PRECONDITION: campaign welcome is completed")
    bad_template = tmp_path / "bad.json"
    bad_template.write_text(json.dumps({**WELCOME, "id": "bad", "message_template": {"text": "Hi {{ receiver.name "}}))
    unknown_field = tmp_path / "typo.json"
    unknown_field.write_text(json.dumps({"id": "typo", "sender": "boss"}))
    not_json = tmp_path / "broken.json"
    not_json.write_text('{"id": "broken",\n')
    refused, typo, broken, missing = await asyncio.gather(
        run_herald(system, "campaigns", "create", str(bad_template)),
        run_herald(system, "campaigns", "create", str(unknown_field)),
        run_herald(system, "campaigns", "create", str(not_json)),
        run_herald(system, "campaigns", "get", "nope"))
    assert refused.code == 1 and refused.out == "" and len(refused.err.splitlines()) == 1
    assert refused.err.startswith("herald: INVALID_ARGUMENT: message_template.text: template syntax error")
    assert refused.err.rstrip().endswith("(TEMPLATE_INVALID)")
    assert (typo.code, typo.err) == (1, "herald: typo.json: CreateCampaignRequest has no field 'sender'\n")
    assert (broken.code, broken.err) == (
        1, "herald: broken.json: not JSON (Expecting property name enclosed in double quotes at line 2 column 1)\n")
    assert (missing.code, missing.err) == (1, "herald: NOT_FOUND: campaign nope does not exist (CAMPAIGN_NOT_FOUND)\n")

    # From stdin, and deleted twice.
    from_stdin = await run_herald(system, "campaigns", "create", "-", "--json",
                                  input=json.dumps({**WELCOME, "id": "spare"}))
    assert from_stdin.code == 0 and from_stdin.json()[0]["id"] == "spare"
    deleted = await run_herald(system, "campaigns", "delete", "spare")
    assert (deleted.code, deleted.out) == (0, "deleted campaign spare\n")
    deleted = await run_herald(system, "campaigns", "delete", "spare")
    assert deleted.code == 1 and deleted.err.startswith("herald: NOT_FOUND: ")


async def test_a_scheduled_campaign_stopped_while_watched_exits_3(system, herald):
    await herald.upsert_users([{"id": "boss", "name": "Boss"}, {"id": "ann", "name": "Ann"}])
    await herald.create_campaign(id="later", sender_id="boss", user_ids=["ann"], message_template={"text": "Later"})

    scheduled = await run_herald(system, "campaigns", "start", "later", "--at", "2030-01-01T09:00:00Z",
                                 "--stop-at", "2030-01-01T10:00")  # no zone: UTC
    assert (scheduled.code, scheduled.out) == (0, "scheduled campaign later for 2030-01-01 09:00:00Z\n")
    assert (await herald.get_campaign("later")).stop_at.ToJsonString() == "2030-01-01T10:00:00Z"

    watch = await start_herald(system, "campaigns", "watch", "later", "--lines")
    first = (await asyncio.wait_for(watch.stdout.readline(), DEADLINE_S)).decode()
    assert first.startswith("scheduled     0.0%"), first
    stopped = await run_herald(system, "campaigns", "stop", "later")
    assert (stopped.code, stopped.out) == (0, "stopped campaign later (0.0% sent)\n")
    out, err = await asyncio.wait_for(watch.communicate(), DEADLINE_S)
    assert watch.returncode == 3, (out, err)
    assert out.decode().splitlines()[-1].startswith("stopped       0.0%")
    as_json = await run_herald(system, "campaigns", "watch", "later", "--json")
    assert as_json.code == 3 and as_json.json()[-1]["stop_reason"] == "STOP_REASON_REQUESTED"
    alias = await run_herald(system, "watch", "later")  # `herald watch` is `campaigns watch --lines`
    assert alias.code == 3 and alias.out.startswith("stopped ")

    # Usage mistakes exit 2; so does a missing API secret, saying where it looked.
    bad_time, no_id, unknown = await asyncio.gather(
        run_herald(system, "campaigns", "start", "later", "--at", "tomorrow"),
        run_herald(system, "campaigns", "watch"),
        run_herald(system, "campaigns", "watch", "later", "--follow"))
    for done in (bad_time, no_id, unknown):
        assert done.code == 2 and done.out == "", done
    assert "'tomorrow' is not a time" in bad_time.err
    env = {k: v for k, v in cli_env(system).items() if k != "HERALD_API_SECRET"}
    no_secret = await run_herald(system, "campaigns", "list", "--data-dir", "/nonexistent/herald", env=env)
    assert no_secret.code == 2 and no_secret.out == ""
    assert no_secret.err.startswith("herald: no API secret: HERALD_API_SECRET is unset and "
                                    f"{os.path.join('/nonexistent/herald', 'api_secret')} does not exist")
    wrong_secret = await run_herald(system, "campaigns", "list", env={**env, "HERALD_API_SECRET": TEST_SECRET[::-1]})
    assert wrong_secret.code == 1 and wrong_secret.err.startswith("herald: UNAUTHENTICATED: ")


async def test_pause_and_resume_a_sending_campaign(system, herald):
    ids = [f"u{i:03d}" for i in range(300)]
    await herald.upsert_users([{"id": "boss", "name": "Boss"}, *({"id": i, "name": i} for i in ids)])
    await herald.create_campaign(id="slow", sender_id="boss", user_ids=ids, message_template={"text": "Hi"},
                                 max_send_rate=50)
    await herald.start_campaign("slow")
    paused = await run_herald(system, "campaigns", "pause", "slow")
    assert paused.code == 0 and paused.out.startswith("paused campaign slow ("), paused
    listed = await run_herald(system, "campaigns", "get", "slow", "--json")
    assert listed.json()[0]["status"] == "CAMPAIGN_STATUS_PAUSED"
    resumed = await run_herald(system, "campaigns", "resume", "slow", "--json")
    assert resumed.code == 0 and resumed.json()[0]["status"] == "CAMPAIGN_STATUS_IN_PROGRESS"
    await herald.stop_campaign("slow")
    again = await run_herald(system, "campaigns", "resume", "slow")
    assert again.code == 1 and again.out == ""
    assert again.err.startswith("herald: FAILED_PRECONDITION"), again.err


async def wrong_recipients(system, command: str, wrong: list[str], both: list[str]) -> tuple[Ran, Ran, Ran]:
    """`herald campaigns <command> welcome` with the recipient kind its audience does not have (the
    service refuses it), with no recipient, and with both kinds (usage mistakes)."""
    return await asyncio.gather(run_herald(system, "campaigns", command, "welcome", *wrong),
                                run_herald(system, "campaigns", command, "welcome"),
                                run_herald(system, "campaigns", command, "welcome", *both))


async def test_preview_a_recipient_as_details_and_as_json(system, herald):
    await herald.upsert_users([{"id": "boss", "name": "Boss"}, {"id": "ann", "name": "Ann"}])
    await herald.create_campaign({**WELCOME, "segment_ids": [], "user_ids": ["ann", "ghost"],
                                  "message_template": {**WELCOME["message_template"], "custom": {"tag": "hi"}}})

    shown = await run_herald(system, "campaigns", "preview", "welcome", "--receiver", "ann")
    assert shown.code == 0, shown.err
    details = {line.split(None, 1)[0]: line.split(None, 1)[1].strip() for line in shown.out.splitlines()}
    assert json.loads(details.pop("custom")) == {"tag": "hi", "campaign_id": "welcome"}  # a Struct: keys unordered
    assert details == {"recipient": "ann", "status": "sent", "cid": "messaging:ann-boss",
                       "channel": "would be created", "members": "ann, boss", "text": "Hi Ann, Boss here!"}
    as_json = await run_herald(system, "campaigns", "preview", "welcome", "--receiver", "ann", "--json")
    [preview] = as_json.json()
    assert (preview["status"], preview["channel_exists"], preview["member_ids"]) == (
        "PREVIEW_STATUS_SENT", False, ["ann", "boss"])
    assert preview["message"]["text"] == "Hi Ann, Boss here!"

    ghost = await run_herald(system, "campaigns", "preview", "welcome", "--receiver", "ghost")
    assert ghost.code == 0 and ghost.out.split() == ["recipient", "ghost", "status", "skipped", "reason",
                                                      "user_not_found"]
    # Nothing was written by the previews: no channel was made.
    assert (await herald.query_channels()).channels == []

    refused, neither, both = await wrong_recipients(system, "preview", ["--cid", "messaging:ann-boss"],
                                                    ["--receiver", "ann", "--cid", "messaging:x"])
    assert refused.code == 1 and refused.err.startswith(
        "herald: INVALID_ARGUMENT: cid: the campaign's audience is users: give receiver_id"), refused.err
    for usage in (neither, both):
        assert usage.code == 2 and "exactly one" in usage.err, usage


async def test_test_send_as_a_table_and_as_json(system, herald):
    await herald.upsert_users([{"id": "boss", "name": "Boss"}, {"id": "ann", "name": "Ann"},
                               {"id": "bob", "name": "Bob"}])
    await herald.create_campaign({**WELCOME, "segment_ids": [], "user_ids": ["ann"]})

    shown = await run_herald(system, "campaigns", "test-send", "welcome", "--to", "ann", "--to", "ghost")
    assert shown.code == 0, shown.err
    header, ann, ghost = shown.out.splitlines()
    note = " ".join(shown.err.split())  # a note for people, on stderr (wrapped at 80): stdout stays the table
    assert header.split() == ["RECIPIENT", "STATUS", "REASON", "CID", "CHANNEL", "MESSAGE", "TEXT"]
    words = ann.split()
    assert words[:4] == ["ann", "sent", "messaging:ann-boss", "created"] and words[4].startswith("test-")
    assert " ".join(words[5:]) == "Hi Ann, Boss here!"
    assert ghost.split() == ["ghost", "skipped", "user_not_found"]
    request_id = note.split()[2]
    assert note == f"request id {request_id} (--request-id {request_id} repeats it without resending)"

    # The same request id again sends nobody twice; --json is the whole answer on one line.
    again = await run_herald(system, "campaigns", "test-send", "welcome", "--to", "ann", "--request-id", request_id,
                             "--json")
    [answer] = again.json()
    assert answer["request_id"] == request_id and answer["recipients"][0]["message"]["id"] == words[4]
    assert answer["recipients"][0]["message"]["custom"] == {"campaign_id": "welcome", "test": True}
    assert [m.id async for m in herald.iter_messages({"created_by_campaign_id": "welcome"})] == [words[4]]

    refused, neither, both = await wrong_recipients(system, "test-send", ["--cid", "messaging:ann-boss"],
                                                    ["--to", "ann", "--cid", "messaging:x"])
    assert refused.code == 1 and refused.err.startswith(
        "herald: INVALID_ARGUMENT: cids: the campaign's audience is users: give user_ids"), refused.err
    for usage in (neither, both):
        assert usage.code == 2 and "--to USER or --cid CID" in usage.err, usage
