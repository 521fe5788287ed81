"""`herald usage [--month YYYY-MM]`: a calendar month's messages against the monthly capacity
(HERALD_MONTHLY_MESSAGE_CAPACITY), as CampaignService.GetUsage answers it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from services.cli.common import DataDirOption, JsonOption, run
from services.cli.output import print_json, print_table

if TYPE_CHECKING:
    from herald.campaign.v1 import campaign_service_pb2
    from services.client import HeraldClient

COLUMNS = ("MONTH", "SENT", "CAPACITY", "REMAINING")
UNLIMITED = "unlimited"


def row(usage: campaign_service_pb2.GetUsageResponse) -> tuple[Any, ...]:
    if not usage.capacity:
        return usage.month, f"{usage.messages_sent:,}", UNLIMITED, UNLIMITED
    return usage.month, f"{usage.messages_sent:,}", f"{usage.capacity:,}", f"{usage.remaining:,}"


def usage(month: Annotated[str | None, typer.Option(
              "--month", metavar="YYYY-MM", show_default=False,
              help="A calendar month in UTC, e.g. 2026-07 (default: the current one).")] = None,
          as_json: JsonOption = False, data_dir: DataDirOption = None) -> None:
    """Show a month's messages against the monthly capacity, and what is left of it.

    With --json: `capacity` 0 is unlimited, and then `remaining` is left out."""

    async def body(herald: HeraldClient) -> None:
        answer = await herald.get_usage(month)
        if as_json:
            print_json(answer)
        else:
            print_table(COLUMNS, [row(answer)])

    run(data_dir, body)
