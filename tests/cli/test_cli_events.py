"""`herald events tail` (live, resumed after a sequence, ended by Ctrl-C or --max-events) and
`herald dead-letters list|replay`, against services whose webhooks go to a port nobody listens
on, so that every event becomes a dead letter after its one attempt."""

from __future__ import annotations

import asyncio
import json
import signal
import time

import pytest

from harness import DEADLINE_S, run_herald, serve_system, start_herald
from services.kit.config import new_webhook_secret
from services.kit.probes import free_port

ONE_TO_ONE = {"type": "messaging", "id": "{{ receiver.id }}-{{ sender.id }}"}


@pytest.fixture
async def system(new_db_url, tmp_path):
    async with serve_system(new_db_url, tmp_path, webhook_url=f"http://127.0.0.1:{free_port()}/hook",
                            webhook_secret=new_webhook_secret(), webhook_max_attempts=1) as running:
        yield running


async def send(herald, id: str, text: str) -> None:
    await herald.create_campaign(id=id, sender_id="boss", user_ids=["ann"], message_template={"text": text},
                                 channel_template=ONE_TO_ONE, create_channels=True)
    await herald.start_campaign(id)


async def test_events_tail_prints_a_users_events_until_ctrl_c(system, herald):
    await herald.upsert_users([{"id": "boss", "name": "Boss"}, {"id": "ann", "name": "Ann"}])
    tail = await start_herald(system, "events", "tail", "--user", "ann", "--json")
    # From now on: the subscription holds some time after the process starts, so campaigns go
    # out until one shows.
    deadline = time.monotonic() + DEADLINE_S
    sent = 0
    first = b""
    while not first:
        sent += 1
        await send(herald, f"c{sent}", f"Hello {sent}")
        try:
            first = await asyncio.wait_for(tail.stdout.readline(), 2)
        except TimeoutError:
            assert time.monotonic() < deadline and tail.returncode is None, f"no event after {sent} campaigns"
    event = json.loads(first)
    assert event["type"] in ("channel.created", "message.new") and "ann" in event["user_ids"]
    if event["type"] == "channel.created":  # the first campaign it saw made the channel
        message = json.loads(await asyncio.wait_for(tail.stdout.readline(), DEADLINE_S))
    else:
        message = event
    assert message["type"] == "message.new" and message["cid"] == "messaging:ann-boss"
    assert message["message"]["text"].startswith("Hello ")

    tail.send_signal(signal.SIGINT)  # Ctrl-C: the way it ends, exit 0 and nothing on stderr
    out, err = await asyncio.wait_for(tail.communicate(), DEADLINE_S)
    assert (tail.returncode, err.decode()) == (0, "")

    # Resumed after a sequence: the events after it, then --max-events ends it.
    after, seen = int(event["sequence"]) - 1, 1 if event is message else 2
    replay = await run_herald(system, "events", "tail", "-u", "ann", "--after", str(after), "--max-events", str(seen))
    lines = replay.out.splitlines()
    assert replay.code == 0 and len(lines) == seen, replay
    assert lines[0].split()[0] == event["sequence"] and lines[0].split()[3] == event["type"]
    assert lines[-1].split()[3:5] == ["message.new", "messaging:ann-boss"]
    assert lines[-1].endswith(f"boss: {message['message']['text']}")
    only_messages = await run_herald(system, "events", "tail", "-u", "ann", "--after", str(after),
                                     "--type", "message.new", "--max-events", "1", "--json")
    assert only_messages.code == 0 and only_messages.json()[0]["id"] == message["id"]

    refused, no_user, negative = await asyncio.gather(
        run_herald(system, "events", "tail", "--user", "ann", "--type", "campaign.started"),
        run_herald(system, "events", "tail"),
        run_herald(system, "events", "tail", "--user", "ann", "--after", "-1"))
    assert refused.code == 1 and refused.err.startswith("herald: INVALID_ARGUMENT: types[0]: "), refused
    assert len(refused.err.splitlines()) == 1
    assert no_user.code == 2 and "--user" in no_user.err
    assert negative.code == 2 and negative.out == ""


async def test_dead_letters_list_and_replay(system, herald):
    await herald.upsert_users([{"id": "boss", "name": "Boss"}, {"id": "ann", "name": "Ann"}])
    await send(herald, "welcome", "Welcome")

    async def letters() -> list:
        return [letter async for letter in herald.iter_dead_letters({"campaign_id": "welcome"})]

    deadline = time.monotonic() + DEADLINE_S
    while len(found := await letters()) < 4:  # campaign.started, channel.created, message.new, campaign.completed
        assert time.monotonic() < deadline, f"4 dead letters: saw {found}"
        await asyncio.sleep(0.1)

    listed = await run_herald(system, "dead-letters", "list", "--filter", '{"campaign_id": "welcome"}', "--json")
    assert listed.code == 0 and len(listed.json()) == 4, listed
    assert {letter["event"]["type"] for letter in listed.json()} == {
        "campaign.started", "channel.created", "message.new", "campaign.completed"}
    assert {letter["destination"] for letter in listed.json()} == {"webhook"}
    table = await run_herald(system, "dead-letters", "list", "--sort=-created_at", "--limit", "3")
    lines = table.out.splitlines()
    assert table.code == 0 and lines[0].split()[:6] == ["ID", "EVENT", "CAMPAIGN", "DESTINATION", "ATTEMPTS", "LAST"]
    assert len(lines) == 4 and all(" webhook " in line and "ConnectError" in line for line in lines[1:]), table.out
    # The campaign's id where the event holds it (channel.created does not).
    assert all(" welcome " in line for line in lines[1:] if "channel.created" not in line), table.out
    assert "the first 3 dead letters" in table.err

    first = listed.json()[0]["id"]
    one = await run_herald(system, "dead-letters", "replay", first)
    assert (one.code, one.out) == (0, "replayed 1 dead letter\n")
    started = await run_herald(system, "dead-letters", "replay", "--filter", '{"type": "campaign.started"}', "--json")
    assert started.code == 0 and started.json()[0]["replayed"] in (0, 1)
    rest = await run_herald(system, "dead-letters", "replay", "--all")
    assert rest.code == 0 and rest.out.startswith("replayed ") and rest.out.endswith(" dead letters\n")

    nothing, two_ways, bad_field = await asyncio.gather(
        run_herald(system, "dead-letters", "replay"),
        run_herald(system, "dead-letters", "replay", first, "--all"),
        run_herald(system, "dead-letters", "list", "--filter", '{"colour": "red"}'))
    for done in (nothing, two_ways):
        assert done.code == 2 and "exactly one of them" in done.err, done
    assert bad_field.code == 1 and bad_field.err.startswith("herald: INVALID_ARGUMENT: filter.colour"), bad_field
    assert len(bad_field.err.splitlines()) == 1
