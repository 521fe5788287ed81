"""`herald users import|list|get`: load users from a file, and look at them.

`users import FILE` streams the file through ImportUsers (never holding it whole), in chunks
each committed as it arrives, with a progress bar on a terminal. The format follows the file's
name (`.jsonl`/`.ndjson`, `.csv`) or `--format`:

- JSON Lines: one user object per line, as `users list --json` prints them (`id`, `name`,
  `role`, `teams` a list, `custom` an object); any other key goes into `custom`.
- CSV with a header row: columns `id`, `name`, `role`, `teams` (several separated by `;`); every
  other column becomes a string field of `custom`, an empty cell none.

A line that cannot be read ends the import there with `FILE:LINE: …` and exit 1; a user the
service refuses is its INVALID_ARGUMENT with the file's line added. The users before it are
imported (run it again once fixed: users are upserted).
"""

from __future__ import annotations

import csv
import json
import re
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, BinaryIO, Literal

import typer

from services.cli.common import (DataDirOption, FilterOption, JsonOption, LimitOption, SortOption, json_object,
                                 page_size, run, show_list)
from services.cli.output import CliError, compact, console, count, fail, print_json, print_table, struct, when

if TYPE_CHECKING:
    from herald.segment.v1 import directory_pb2
    from services.client import HeraldClient, HeraldError

app = typer.Typer(name="users", no_args_is_help=True, help="Import users from a file, list them, show them.")

KNOWN_KEYS = ("id", "name", "role", "teams", "custom", "created_at", "updated_at")  # a User's fields
COLUMNS = ("ID", "NAME", "ROLE", "TEAMS", "CUSTOM", "CREATED")


def row(user: directory_pb2.User) -> tuple[Any, ...]:
    return (user.id, user.name, user.role, ", ".join(user.teams), compact(struct(user.custom)), when(user.created_at))


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(metavar="FILE", exists=True, dir_okay=False, readable=True,
                                         help="A .jsonl or .csv file of users.")],
    format: Annotated[Literal["jsonl", "csv"] | None, typer.Option(
        "--format", show_default=False, help="jsonl or csv (default: from the file's name).")] = None,
    chunk_size: Annotated[int, typer.Option("--chunk-size", min=1, max=10_000,
                                            help="Users per chunk (each committed as it arrives).")] = 1000,
    as_json: JsonOption = False,
    data_dir: DataDirOption = None,
) -> None:
    """Import (upsert) users from a JSON Lines or CSV file, streaming it, with a progress bar.

    JSON Lines: one object per line, keys id, name, role, teams (a list), custom (an object);
    other keys go into custom. CSV: a header row naming the columns id, name, role, teams
    (separated by ';'); every other column goes into custom as a string.
    """
    kind = format or _format_of(file)
    size = file.stat().st_size

    async def body(herald: HeraldClient) -> int:
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

        from services.client import HeraldError

        with file.open("rb") as stream, Progress(
                TextColumn("importing {task.description}"), BarColumn(), DownloadColumn(),
                TextColumn("{task.fields[users]:,} users"), TimeRemainingColumn(elapsed_when_finished=True),
                console=console(), disable=as_json or not console().is_terminal) as progress:
            reader = UserReader(stream, kind)
            task = progress.add_task(file.name, total=size, users=0)

            def sent(count: int) -> None:
                progress.update(task, completed=reader.bytes_read, users=count)

            try:
                imported = await herald.import_users(reader, chunk_size=chunk_size, on_progress=sent)
            except HeraldError as error:
                raise _with_lines(error, reader.lines, chunk_size, file.name) from None
            progress.update(task, completed=reader.bytes_read, users=imported)
        if reader.error:
            before = f"the {count(imported, 'user')} before it were imported" if imported else "nothing was imported"
            raise CliError(f"{file.name}:{reader.error}; {before}")
        if as_json:
            print_json({"file": str(file), "imported": imported})
        else:
            console().print(f"imported {count(imported, 'user')} from {file.name}")
        return 0

    run(data_dir, body)


@app.command("list")
def list_(filter: FilterOption = None, sort: SortOption = None, limit: LimitOption = 100,
          as_json: JsonOption = False, data_dir: DataDirOption = None) -> None:
    """List users, those of a filter (on id, name, role, teams, created_at, updated_at or any
    custom field by its name)."""
    query = json_object(filter, "--filter")

    async def body(herald: HeraldClient) -> None:
        from services.kit.limits import USERS_PAGE

        users = herald.iter_users(query, sort, page_size=page_size(limit, USERS_PAGE))
        await show_list(users, limit=limit, as_json=as_json, columns=COLUMNS, row=row, noun="users")

    run(data_dir, body)


@app.command("get")
def get(ids: Annotated[list[str], typer.Argument(metavar="ID", help="User ids.")],
        as_json: JsonOption = False, data_dir: DataDirOption = None) -> None:
    """Show users by id; exits 1 when one of them does not exist (after showing the others)."""

    async def body(herald: HeraldClient) -> int:
        found = await herald.get_users(ids)
        if as_json:
            for user in found.users:
                print_json(user)
        else:
            print_table(COLUMNS, (row(user) for user in found.users))
        if found.missing_ids:
            fail(f"NOT_FOUND: no user {', '.join(found.missing_ids)}")
        return 0

    run(data_dir, body)


def _format_of(file: Path) -> str:
    suffix = file.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    raise typer.BadParameter(f"{file.name}: say --format jsonl or --format csv (the name ends in neither)",
                             param_hint="'FILE'")


class UserReader:
    """The users of a JSON Lines or CSV file, read line by line as the import asks for them.

    A line that cannot be read ends the iteration and is kept in `error` (`LINE: why`), so the
    users before it are still sent. `lines[i]` is the file line of the i-th user yielded;
    `bytes_read` drives the progress bar."""

    def __init__(self, stream: BinaryIO, kind: str) -> None:
        self.stream = stream
        self.kind = kind
        self.bytes_read = 0
        self.lines = array("L")
        self.error = ""

    def __iter__(self) -> Iterator[directory_pb2.User]:
        from herald.segment.v1 import directory_pb2
        from services.client.messages import build

        rows = self._jsonl() if self.kind == "jsonl" else self._csv()
        try:
            for line, values in rows:
                try:
                    user = build(directory_pb2.User, values)
                except (TypeError, ValueError) as exc:
                    raise _BadLine(line, str(exc)) from None
                self.lines.append(line)
                yield user
        except _BadLine as bad:
            self.error = f"{bad.line}: {bad.why}"

    def _text_lines(self) -> Iterator[str]:
        for number, raw in enumerate(self.stream, 1):
            self.bytes_read += len(raw)
            try:
                text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise _BadLine(number, f"not UTF-8 ({exc.reason} at byte {exc.start})") from None
            yield text

    def _jsonl(self) -> Iterator[tuple[int, dict[str, Any]]]:
        for number, text in enumerate(self._text_lines(), 1):
            text = text.strip()
            if not text:
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                raise _BadLine(number, f"not JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(value, dict):
                raise _BadLine(number, "not a JSON object")
            extra = {key: value.pop(key) for key in list(value) if key not in KNOWN_KEYS}
            if extra:
                custom = value.get("custom") or {}
                if not isinstance(custom, dict):
                    raise _BadLine(number, "custom is not a JSON object")
                value["custom"] = {**extra, **custom}
            yield number, value

    def _csv(self) -> Iterator[tuple[int, dict[str, Any]]]:
        reader = csv.reader(self._text_lines())
        try:
            header = [name.strip() for name in next(reader)]
        except StopIteration:
            return
        except csv.Error as exc:
            raise _BadLine(reader.line_num, f"not CSV ({exc})") from None
        if "id" not in header:
            raise _BadLine(1, "the header row has no id column")
        if "" in header or len(set(header)) < len(header):
            raise _BadLine(1, "the header row has an empty or repeated column name")
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise _BadLine(reader.line_num, f"not CSV ({exc})") from None
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) != len(header):
                raise _BadLine(reader.line_num, f"{len(cells)} cells, the header has {len(header)}")
            user: dict[str, Any] = {}
            custom: dict[str, str] = {}
            for name, cell in zip(header, cells):
                if name == "teams":
                    user["teams"] = [team.strip() for team in cell.split(";") if team.strip()]
                elif name in ("id", "name", "role"):
                    user[name] = cell
                elif cell != "":
                    custom[name] = cell
            if custom:
                user["custom"] = custom
            yield reader.line_num, user


class _BadLine(Exception):
    def __init__(self, line: int, why: str) -> None:
        super().__init__(why)
        self.line = line
        self.why = why


_CHUNK = re.compile(r"\(chunk (\d+);")
_USER = re.compile(r"^users\[(\d+)\]")


def _with_lines(error: HeraldError, lines: array[int], chunk_size: int, name: str) -> HeraldError:
    """ImportUsers names a bad user by its place in its chunk: add the file's line of each."""
    found = []
    for violation in error.field_violations:
        chunk, user = _CHUNK.search(violation.description), _USER.match(violation.field)
        if chunk and user:
            index = int(chunk.group(1)) * chunk_size + int(user.group(1))
            if index < len(lines):
                found.append(f"{name} line {lines[index]}")
    if found:
        error.message += f" ({', '.join(dict.fromkeys(found))})"
    return error

