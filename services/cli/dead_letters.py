"""`herald dead-letters list|replay`: the webhooks and push notifications that failed every
attempt (or were refused), and sending them again."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from services.cli.common import (DataDirOption, FilterOption, JsonOption, LimitOption, SortOption, json_object,
                                 page_size, run, show_list)
from services.cli.output import console, count, one_line, print_json, when

if TYPE_CHECKING:
    from herald.delivery.v1 import delivery_pb2
    from services.client import HeraldClient

app = typer.Typer(name="dead-letters", no_args_is_help=True,
                  help="Webhooks and push notifications that failed every attempt; send them again.")

COLUMNS = ("ID", "EVENT", "CAMPAIGN", "DESTINATION", "ATTEMPTS", "LAST ERROR", "DEAD SINCE")


def row(letter: delivery_pb2.DeadLetter) -> tuple[Any, ...]:
    event = letter.event
    campaign = event.campaign.id or event.message.created_by_campaign_id
    error = one_line(letter.last_error)
    if letter.last_http_status:
        error = f"HTTP {letter.last_http_status} {error}".strip()
    destination = letter.destination + (f" {letter.device_id}" if letter.device_id else "")
    return (letter.id, event.type, campaign, destination, letter.attempts, error, when(letter.created_at))


@app.command("list")
def list_(filter: FilterOption = None, sort: SortOption = None, limit: LimitOption = 100,
          as_json: JsonOption = False, data_dir: DataDirOption = None) -> None:
    """List dead letters, those of a filter (on type, campaign_id, destination, webhook_id,
    device_id, id, created_at)."""
    query = json_object(filter, "--filter")

    async def body(herald: HeraldClient) -> None:
        from services.kit.limits import DEAD_LETTERS_PAGE

        letters = herald.iter_dead_letters(query, sort, page_size=page_size(limit, DEAD_LETTERS_PAGE))
        await show_list(letters, limit=limit, as_json=as_json, columns=COLUMNS, row=row, noun="dead letters")

    run(data_dir, body)


@app.command("replay")
def replay(ids: Annotated[list[str] | None, typer.Argument(metavar="ID", show_default=False,
                                                           help="Dead letter ids (up to 1,000).")] = None,
           all: Annotated[bool, typer.Option("--all", help="Every dead letter.")] = False,
           filter: FilterOption = None, as_json: JsonOption = False, data_dir: DataDirOption = None) -> None:
    """Send dead letters again (with their X-Webhook-Id): these ids, --all, or those of --filter.
    One that fails every attempt again comes back as a new dead letter."""
    query = json_object(filter, "--filter")
    if sum((bool(ids), all, query is not None)) != 1:
        raise typer.BadParameter("give ids, --all or --filter (exactly one of them)", param_hint="'ID'")

    async def body(herald: HeraldClient) -> None:
        replayed = await herald.replay_dead_letters(ids or (), all=all, filter=query)
        if as_json:
            print_json({"replayed": replayed})
        else:
            console().print(f"replayed {count(replayed, 'dead letter')}")

    run(data_dir, body)
