"""`herald segments create|get|list|add-targets|remove-targets|targets|delete`: audiences.

A segment is a filter (`--filter`), all users (`--all-users`), all of the sender's channels
(`--all-sender-channels`), or, with none of them, a list of targets filled with `add-targets`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from services.cli.common import (DataDirOption, FilterOption, JsonOption, LimitOption, SortOption, json_object,
                                 page_size, run, show_list)
from services.cli.output import (CliError, compact, console, count, enum_name, print_details, print_json, struct,
                                 when)

if TYPE_CHECKING:
    from herald.segment.v1 import segment_pb2
    from services.client import HeraldClient

app = typer.Typer(name="segments", no_args_is_help=True,
                  help="Make audiences: filters, all users, all of a sender's channels, or lists of targets.")

COLUMNS = ("ID", "TYPE", "NAME", "AUDIENCE", "SIZE", "CREATED")
SegmentId = Annotated[str, typer.Argument(metavar="ID", help="The segment's id.")]
TargetsArgument = Annotated[list[str] | None, typer.Argument(
    metavar="TARGET", show_default=False, help="User ids (user segments) or channel cids type:id.")]
TargetsFileOption = Annotated[Path | None, typer.Option(
    "--file", exists=True, dir_okay=False, readable=True, show_default=False,
    help="A file of targets, one per line (blank lines and lines starting with # are skipped).")]


def audience(segment: segment_pb2.Segment) -> str:
    if segment.all_users:
        return "all users"
    if segment.all_sender_channels:
        return "all the sender's channels"
    if segment.HasField("filter"):
        return compact(struct(segment.filter))
    return "targets"


def row(segment: segment_pb2.Segment) -> tuple[Any, ...]:
    return (segment.id, _type(segment), segment.name, audience(segment), f"{segment.size:,}",
            when(segment.created_at))


def show(segment: segment_pb2.Segment, as_json: bool) -> None:
    if as_json:
        print_json(segment)
        return
    print_details([("id", segment.id), ("type", _type(segment)), ("name", segment.name),
                   ("description", segment.description), ("audience", audience(segment)),
                   ("size", f"{segment.size:,}"), ("created", when(segment.created_at)),
                   ("updated", when(segment.updated_at))])


@app.command("create")
def create(
    type: Annotated[Literal["user", "channel"], typer.Option(
        "--type", help="user: targets are user ids; channel: channel cids (type:id).")] = "user",
    id: Annotated[str, typer.Option("--id", help="The segment's id (default: a new UUID).")] = "",
    name: Annotated[str, typer.Option("--name", help="A name for people.")] = "",
    description: Annotated[str, typer.Option("--description")] = "",
    filter: FilterOption = None,
    all_users: Annotated[bool, typer.Option("--all-users", help="Every user (user segments).")] = False,
    all_sender_channels: Annotated[bool, typer.Option(
        "--all-sender-channels", help="Every channel the campaign's sender is in (channel segments).")] = False,
    as_json: JsonOption = False,
    data_dir: DataDirOption = None,
) -> None:
    """Create a segment: a filter, all users, all the sender's channels, or (none of them) a
    list of targets to fill with add-targets."""
    query = json_object(filter, "--filter")

    async def body(herald: HeraldClient) -> None:
        show(await herald.create_segment(type, id=id, name=name, description=description, filter=query,
                                         all_users=all_users, all_sender_channels=all_sender_channels), as_json)

    run(data_dir, body)


@app.command("get")
def get(id: SegmentId, as_json: JsonOption = False,
        data_dir: DataDirOption = None) -> None:
    """Show a segment."""

    async def body(herald: HeraldClient) -> None:
        show(await herald.get_segment(id), as_json)

    run(data_dir, body)


@app.command("list")
def list_(filter: FilterOption = None, sort: SortOption = None, limit: LimitOption = 100,
          as_json: JsonOption = False, data_dir: DataDirOption = None) -> None:
    """List segments, those of a filter (on id, name, type, all_users, created_at, updated_at)."""
    query = json_object(filter, "--filter")

    async def body(herald: HeraldClient) -> None:
        from services.kit.limits import SEGMENTS_PAGE

        segments = herald.iter_segments(query, sort, page_size=page_size(limit, SEGMENTS_PAGE))
        await show_list(segments, limit=limit, as_json=as_json, columns=COLUMNS, row=row, noun="segments")

    run(data_dir, body)


@app.command("add-targets")
def add_targets(id: SegmentId, targets: TargetsArgument = None,
                file: TargetsFileOption = None, as_json: JsonOption = False, data_dir: DataDirOption = None) -> None:
    """Add targets to a segment: those named, and/or those of a file (one per line)."""
    _change_targets(id, targets, file, as_json, data_dir, remove=False)


@app.command("remove-targets")
def remove_targets(id: SegmentId, targets: TargetsArgument = None,
                   file: TargetsFileOption = None, as_json: JsonOption = False,
                   data_dir: DataDirOption = None) -> None:
    """Remove targets from a segment: those named, and/or those of a file (one per line)."""
    _change_targets(id, targets, file, as_json, data_dir, remove=True)


@app.command("targets")
def targets(id: SegmentId, limit: LimitOption = 1000,
            as_json: JsonOption = False, data_dir: DataDirOption = None) -> None:
    """List a segment's targets (added by add-targets), in order."""

    async def body(herald: HeraldClient) -> None:
        from services.kit.limits import TARGETS_PAGE

        found = herald.iter_segment_targets(id, page_size=page_size(limit, TARGETS_PAGE))
        await show_list(found, limit=limit, as_json=as_json, columns=("TARGET", "ADDED"),
                        row=lambda target: (target.target_id, when(target.created_at)), noun="targets")

    run(data_dir, body)


@app.command("delete")
def delete(ids: Annotated[list[str], typer.Argument(metavar="ID", help="Segment ids.")],
           data_dir: DataDirOption = None) -> None:
    """Delete segments and their targets."""

    async def body(herald: HeraldClient) -> None:
        for id in ids:
            await herald.delete_segment(id)
            console().print(f"deleted segment {id}")

    run(data_dir, body)


def _change_targets(id: str, named: list[str] | None, file: Path | None, as_json: bool, data_dir: Path | None,
                    *, remove: bool) -> None:
    if not named and file is None:
        raise typer.BadParameter("name targets, or give --file", param_hint="'TARGET'")

    async def body(herald: HeraldClient) -> None:
        from services.kit.limits import MAX_TARGETS_PER_CALL

        change = herald.delete_segment_targets if remove else herald.add_segment_targets
        sent = 0
        segment = None
        for batch in _batches(_targets(named or [], file), MAX_TARGETS_PER_CALL):
            segment = await change(id, batch)
            sent += len(batch)
        if segment is None:
            raise CliError(f"{file}: no targets in it")
        if as_json:
            print_json(segment)
        else:
            done = f"removed {count(sent, 'target')} from" if remove else f"added {count(sent, 'target')} to"
            console().print(f"{done} segment {id} (size {segment.size:,})")

    run(data_dir, body)


def _targets(named: list[str], file: Path | None) -> Iterator[str]:
    yield from named
    if file is not None:
        with file.open(encoding="utf-8-sig") as lines:
            for line in lines:
                target = line.strip()
                if target and not target.startswith("#"):
                    yield target


def _batches(items: Iterator[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _type(segment: segment_pb2.Segment) -> str:
    from herald.segment.v1 import segment_pb2

    return enum_name(segment_pb2.SegmentType.Name(segment.type))
