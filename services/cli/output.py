"""How `herald` prints: rich tables and detail views for people, one JSON object per line with
`--json` for scripts, failures as one line on stderr (`herald: <what went wrong>`), and the exit
codes every command shares.

rich is imported on first use, never for `herald --help`. When stdout is not a terminal, tables
are drawn 200 columns wide (or $COLUMNS) so a pipe gets whole lines, and no colours.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any, NoReturn

import typer

if TYPE_CHECKING:
    from google.protobuf.message import Message
    from google.protobuf.timestamp_pb2 import Timestamp
    from rich.console import Console

EXIT_OK = 0
EXIT_ERROR = 1  # a call failed (the service's status), or a file could not be read
EXIT_USAGE = 2  # a usage mistake (click's), or no API secret where it was looked for
EXIT_STOPPED = 3  # `campaigns watch`: the campaign stopped instead of completing
EXIT_INTERRUPTED = 130  # Ctrl-C (`events tail` exits 0: that is how it ends)


class CliError(Exception):
    """A failure to report as one line, `herald: <message>`, exiting `code`."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    """Prints `herald: <message>` on one line of stderr and exits `code`."""
    print(f"herald: {one_line(message)}", file=sys.stderr, flush=True)
    raise typer.Exit(code)


def one_line(text: str) -> str:
    return " ".join(text.split())


@cache
def console() -> Console:
    from rich.console import Console

    width = None
    if not sys.stdout.isatty() and not os.environ.get("COLUMNS"):
        width = 200
    return Console(width=width, highlight=False)


@cache
def err_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def note(text: str) -> None:
    """A remark for people (a count, a hint) on stderr, so stdout stays data."""
    err_console().print(text, style="dim", markup=False)


def as_dict(message: Message) -> dict[str, Any]:
    """A message as JSON-ready data: the protos' own field names, zero values included."""
    from google.protobuf.json_format import MessageToDict

    return MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


def print_json(value: Message | Mapping[str, Any]) -> None:
    """One JSON object on one line."""
    data = value if isinstance(value, Mapping) else as_dict(value)
    print(json.dumps(data, ensure_ascii=False), flush=True)


def print_table(columns: Sequence[str], rows: Iterable[Sequence[Any]], *, empty: str = "") -> int:
    """A rich table of `rows` (cells become text; None is blank); returns the rows printed.
    With no rows, prints `empty` as a note instead of an empty table."""
    from rich.table import Table

    table = Table(box=None, pad_edge=False, header_style="bold")
    for name in columns:
        table.add_column(name, overflow="fold")
    count = 0
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
        count += 1
    if count:
        console().print(table)
    elif empty:
        note(empty)
    return count


def print_details(rows: Iterable[tuple[str, Any]]) -> None:
    """One object as `field  value` lines; empty values are left out."""
    from rich.table import Table

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    for name, value in rows:
        if value not in (None, "", [], {}):
            grid.add_row(name, str(value))
    console().print(grid)


def when(stamp: Timestamp) -> str:
    """A timestamp as `2026-07-01 09:00:00Z`, blank when unset."""
    if not stamp.seconds and not stamp.nanos:
        return ""
    return stamp.ToDatetime().strftime("%Y-%m-%d %H:%M:%SZ")


def compact(value: Any) -> str:
    """A filter or custom data as short JSON for a table cell."""
    if isinstance(value, Mapping) and not value:
        return ""
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def struct(value: Any) -> Any:
    """A `google.protobuf.Struct` as plain data."""
    from google.protobuf.json_format import MessageToDict

    return MessageToDict(value)


def count(n: int, noun: str) -> str:
    """`1 target`, `2,000 targets`."""
    return f"{n:,} {noun if n == 1 else noun + 's'}"


def listed(items: Sequence[str], most: int = 5) -> str:
    """`a, b, c` — or the first `most` and how many there are."""
    if len(items) <= most:
        return ", ".join(items)
    return f"{', '.join(items[:most])}, … ({len(items):,})"


def enum_name(value: str) -> str:
    """`CAMPAIGN_STATUS_IN_PROGRESS` → `in_progress`, as people type them."""
    for prefix in ("CAMPAIGN_STATUS_", "STOP_REASON_", "SEGMENT_TYPE_", "SENDER_MODE_", "SENDER_VISIBILITY_",
                   "PREVIEW_STATUS_"):
        if value.startswith(prefix):
            return value.removeprefix(prefix).lower()
    return value
