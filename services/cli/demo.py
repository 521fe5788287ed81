"""`herald demo`: Herald at work in seconds, on the services `make run` started.

It imports sample users (`demo-sender` and `demo-user-0001`…, upserted again on every run), makes
a filter segment of them and a templated campaign with ids of their own (`demo-<6 hex>`), starts
it and watches it to the end with the progress bar of `herald campaigns watch`. It exits as that
does: 0 when the campaign completed.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any

import typer

from services.cli.campaigns import follow
from services.cli.common import DataDirOption, run
from services.cli.output import console

if TYPE_CHECKING:
    from services.client import HeraldClient

SENDER = "demo-sender"
TEAM = "demo"
NAMES = ("Ann", "Bob", "Cleo", "Dev", "Eva", "Finn", "Gia", "Hugo", "Ines", "Jan", "Kemi", "Lars", "Mei", "Noor")
CITIES = ("Amsterdam", "Lagos", "Lima", "Lisbon", "Oslo", "Pune", "Tokyo")
TEXT = "Hi {{ receiver.name }}, greetings to {{ receiver.custom.city }} from {{ sender.name }}!"


def sample_users(count: int) -> Iterator[dict[str, Any]]:
    """The sender, then `count` users of the demo team, each with a name and a city."""
    yield {"id": SENDER, "name": "Herald Demo", "role": "admin", "teams": [f"{TEAM}-staff"]}
    for n in range(1, count + 1):
        yield {"id": f"demo-user-{n:04d}", "name": f"{NAMES[n % len(NAMES)]} {n}", "teams": [TEAM],
               "custom": {"city": CITIES[n % len(CITIES)]}}


def demo(users: Annotated[int, typer.Option("--users", min=1, max=100_000,
                                            help="How many sample users to import and send to.")] = 2000,
         data_dir: DataDirOption = None) -> None:
    """Import sample users, make a segment and a templated campaign, start it and watch it to the
    end: the first thing to run after `make run`. Run it again at will (new ids each time).
    Exits 0 when the campaign completed."""

    async def body(herald: HeraldClient) -> int:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        out = console()
        run_id = f"demo-{secrets.token_hex(3)}"
        out.print(f"[bold]Herald demo[/] {run_id}: {users:,} users, a segment, a campaign", highlight=False)

        with Progress(TextColumn("1/4 importing users"), BarColumn(), MofNCompleteColumn(), console=out,
                      transient=True, disable=not out.is_terminal) as progress:
            task = progress.add_task("users", total=users + 1)
            imported = await herald.import_users(sample_users(users),
                                                 on_progress=lambda n: progress.update(task, completed=n))
        out.print(f"1/4 imported {imported:,} users: {SENDER} and demo-user-0001 … demo-user-{users:04d}",
                  markup=False)

        where = {"teams": {"$contains": TEAM}}
        segment = await herald.create_segment("user", id=run_id, name=f"Demo audience {run_id}", filter=where,
                                              description=f'users whose teams contain "{TEAM}"')
        out.print(f'2/4 created segment {segment.id}: users whose teams contain "{TEAM}"', markup=False)

        campaign = await herald.create_campaign(
            id=run_id, name=f"Demo {run_id}", sender_id=SENDER, segment_ids=[segment.id],
            message_template={"text": TEXT},
            channel_template={"type": "messaging", "id": "{{ receiver.id }}-{{ sender.id }}"},
            create_channels=True)
        out.print(f"3/4 created campaign {campaign.id}: {TEXT}", markup=False)

        await herald.start_campaign(campaign.id)
        out.print(f"4/4 started campaign {campaign.id}; watching it to the end", markup=False)
        code = await follow(herald, campaign.id)
        out.print(f"\nNext: herald campaigns get {campaign.id}    herald segments list    "
                  f"herald users get demo-user-0001", markup=False)
        return code

    run(data_dir, body)
