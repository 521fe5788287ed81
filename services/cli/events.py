"""`herald events tail`: the in-app events of some users (`channel.created`, `message.new`),
as they happen, one line each (or one JSON object with `--json`). Ctrl-C ends it, exit 0."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import TYPE_CHECKING, Annotated, cast

import typer

from services.cli.common import DataDirOption, JsonOption, run
from services.cli.output import EXIT_OK, listed, one_line, print_json, when

if TYPE_CHECKING:
    from herald.delivery.v1 import delivery_pb2
    from services.client import HeraldClient

app = typer.Typer(name="events", no_args_is_help=True, help="Follow the in-app events of users.")


def line(event: delivery_pb2.Event) -> str:
    """`SEQUENCE  TIME  TYPE  CID  what happened`."""
    if event.type == "message.new":
        what = f"{event.message.user_id}: {one_line(event.message.text)}"
    elif event.type == "channel.created":
        what = "members " + listed([member.user_id for member in event.members or event.channel.members])
    else:
        what = event.campaign.id
    return f"{event.sequence:>8}  {when(event.created_at)}  {event.type:<15}  {event.cid}  {what}"


@app.command("tail")
def tail(
    users: Annotated[list[str], typer.Option("--user", "-u", metavar="ID", help="A user whose events to show "
                                                                               "(repeatable, up to 1,000).")],
    types: Annotated[list[str] | None, typer.Option(
        "--type", metavar="TYPE", show_default=False, help="Only channel.created or message.new (repeatable).")] = None,
    after: Annotated[int, typer.Option(
        "--after", metavar="SEQUENCE", min=0,
        help="Start after this sequence (the first column; resume with the last one seen); 0: from now.")] = 0,
    max_events: Annotated[int, typer.Option("--max-events", metavar="N", min=0,
                                            help="End after N events (0: run until Ctrl-C).")] = 0,
    as_json: JsonOption = False,
    data_dir: DataDirOption = None,
) -> None:
    """Print the events of these users as they happen (from now, or after a sequence), one line
    each: sequence, time, type, channel, and the message or the members. Ctrl-C ends it (exit 0)."""

    async def body(herald: HeraldClient) -> int:
        count = 0
        subscription = cast("AsyncGenerator[delivery_pb2.Event, None]",
                            herald.subscribe_events(users, after, types or ()))
        async with aclosing(subscription) as events:
            async for event in events:
                if as_json:
                    print_json(event)
                else:
                    print(line(event), flush=True)
                count += 1
                if count == max_events:
                    break
        return EXIT_OK

    run(data_dir, body, interrupted=EXIT_OK)
