"""What the commands on the client share: their options (`--data-dir`, `--json`, `--filter`,
`--sort`, `--limit`), how a command gets a `HeraldClient` and runs on it, and how a failure
becomes one line on stderr and an exit code (services.cli.output).

A command is a plain function that hands `run` an async body taking the client:

    def get(id: str, data_dir: DataDirOption = None) -> None:
        async def body(herald: HeraldClient) -> int:
            ...
        run(data_dir, body)

The client, grpc and the generated messages are imported when a command runs, not for `--help`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from services.cli.output import EXIT_INTERRUPTED, EXIT_USAGE, CliError, fail, note, print_json, print_table

if TYPE_CHECKING:
    from google.protobuf.message import Message

    from services.client import HeraldClient
    from services.kit.config import Settings
    from services.kit.limits import PageLimit

_T = TypeVar("_T")
_M = TypeVar("_M", bound="Message")

DataDirOption = Annotated[Path | None, typer.Option(
    "--data-dir", show_default=False, file_okay=False,
    help="Where `herald serve` keeps the API secret (default: $HERALD_DATA_DIR or ./var). "
         "$HERALD_API_SECRET, when set, is used instead.")]
JsonOption = Annotated[bool, typer.Option("--json", help="One JSON object per line, for scripts.")]
FilterOption = Annotated[str | None, typer.Option(
    "--filter", metavar="JSON", show_default=False,
    help='A MongoDB-style filter, e.g. \'{"country": "NL"}\' or \'{"created_at": {"$gte": "2026-01-01T00:00:00Z"}}\'.')]
SortOption = Annotated[list[str] | None, typer.Option(
    "--sort", metavar="FIELD", show_default=False,
    help="Sort by FIELD, or -FIELD for descending (repeatable; write --sort=-FIELD).")]
LimitOption = Annotated[int, typer.Option("--limit", min=0, help="Show at most this many (0: all).")]


def settings(data_dir: Path | None) -> Settings:
    """The HERALD_* settings with the API secret in force; exits 2 when there is none."""
    from services.kit.config import ConfigError, settings_from_env

    try:
        overrides: dict[str, Any] = {"data_dir": data_dir.resolve()} if data_dir else {}
        return settings_from_env(**overrides).with_existing_secret()
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)


def run(data_dir: Path | None, body: Callable[[HeraldClient], Awaitable[int | None]], *,
        interrupted: int = EXIT_INTERRUPTED) -> None:
    """Runs `body` with a client on a new event loop and exits with its code (None is 0). A
    failed call is `herald: <CODE>: <message>` and exit 1; Ctrl-C exits `interrupted`."""
    from services.client import HeraldClient, HeraldError

    config = settings(data_dir)

    async def main() -> int:
        async with HeraldClient.from_settings(config, "cli") as herald:
            return await body(herald) or 0

    try:
        code = asyncio.run(main())
    except HeraldError as error:
        message = str(error)
        if error.code.name == "UNAVAILABLE":
            message += (f" (is Herald running? segment {config.target('segment')}, campaign "
                        f"{config.target('campaign')}, delivery {config.target('delivery')}; `herald serve` "
                        "starts them, HERALD_*_ADDR says where they are)")
        fail(message)
    except CliError as error:
        fail(str(error), error.code)
    except KeyboardInterrupt:
        code = interrupted
    if code:
        raise typer.Exit(code)


def json_object(text: str | None, option: str) -> dict[str, Any] | None:
    """An option's JSON object (None when the option is absent); anything else is a usage mistake."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(f"not JSON: {exc}", param_hint=f"'{option}'") from None
    if not isinstance(value, dict):
        raise typer.BadParameter("must be a JSON object ({…})", param_hint=f"'{option}'")
    return value


def page_size(limit: int, page: PageLimit) -> int:
    """The page size for showing `limit` items (and learning whether there are more)."""
    return page.max if limit == 0 else min(limit + 1, page.max)


async def show_list(items: AsyncIterator[_M], *, limit: int, as_json: bool, columns: Sequence[str],
                    row: Callable[[_M], Sequence[Any]], noun: str) -> None:
    """The items of a query: one JSON line each as they come, or a table; at most `limit` (0:
    all), with a note on stderr when there were more."""
    shown: list[_M] = []
    more = False
    async for item in items:
        if limit and len(shown) == limit:
            more = True
            break
        shown.append(item)
        if as_json:
            print_json(item)
    if not as_json:
        print_table(columns, (row(item) for item in shown), empty=f"no {noun}")
    if more:
        note(f"(the first {limit:,} {noun}; --limit 0 shows all)")


async def first(items: AsyncIterator[_T], count: int) -> list[_T]:
    """The first `count` items of an async iterator."""
    taken: list[_T] = []
    async for item in items:
        taken.append(item)
        if len(taken) == count:
            break
    return taken
