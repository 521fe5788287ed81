"""`herald campaigns create|get|list|start|pause|resume|stop|delete|watch|preview|test-send`, and
`herald watch` (its alias).

`campaigns watch ID` follows a campaign until it ends: on a terminal a live progress bar (sent,
skipped, failed, rate, ETA); in a pipe, or with `--lines`, one line per update; with `--json`,
one JSON object per update. Its exit code says how the campaign ended: 0 completed, 3 stopped
(1 when a call failed, 2 a usage mistake).
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from services.cli.common import (DataDirOption, FilterOption, JsonOption, LimitOption, SortOption, json_object,
                                 page_size, run, show_list)
from services.cli.output import (EXIT_OK, EXIT_STOPPED, CliError, compact, console, enum_name, listed, note,
                                 print_details, print_json, print_table, struct, when)

if TYPE_CHECKING:
    from herald.campaign.v1 import campaign_pb2
    from services.client import HeraldClient

app = typer.Typer(name="campaigns", no_args_is_help=True,
                  help="Create campaigns from JSON files, start, stop and watch them.")

COLUMNS = ("ID", "NAME", "STATUS", "SENDER", "AUDIENCE", "PROGRESS", "SENT", "SKIPPED", "FAILED", "TOTAL", "CREATED")
CampaignId = Annotated[str, typer.Argument(metavar="ID", help="The campaign's id.")]
WATCH_EXITS = "Exit status: 0 completed, 3 stopped, 1 a call failed, 2 a usage mistake."


def status(campaign: campaign_pb2.Campaign) -> str:
    from herald.campaign.v1 import campaign_pb2

    name = enum_name(campaign_pb2.CampaignStatus.Name(campaign.status))
    if campaign.stop_reason:
        name += f" ({enum_name(campaign_pb2.StopReason.Name(campaign.stop_reason))})"
    return name


def audience(campaign: campaign_pb2.Campaign) -> str:
    if campaign.segment_ids:
        return "segments " + listed(list(campaign.segment_ids))
    return f"{len(campaign.user_ids):,} users"


def row(campaign: campaign_pb2.Campaign) -> tuple[Any, ...]:
    s = campaign.stats
    return (campaign.id, campaign.name, status(campaign), campaign.sender_id, audience(campaign),
            f"{s.progress:.1%}", f"{s.stats_messages_sent:,}", f"{s.recipients_skipped:,}",
            f"{s.recipients_failed:,}", f"{s.recipients_total:,}", when(campaign.created_at))


def show(campaign: campaign_pb2.Campaign, as_json: bool) -> None:
    if as_json:
        print_json(campaign)
        return
    s = campaign.stats
    template = campaign.channel_template
    print_details([
        ("id", campaign.id), ("name", campaign.name), ("description", campaign.description),
        ("status", status(campaign)), ("stop message", campaign.stop_message),
        ("sender", campaign.sender_id), ("audience", audience(campaign)),
        ("users", listed(list(campaign.user_ids))),
        ("message", campaign.message_template.text),
        ("channel", f"{template.type}:{template.id}" if template.id else template.type),
        ("create channels", "yes" if campaign.create_channels else ""),
        ("scheduled for", when(campaign.scheduled_for)), ("stop at", when(campaign.stop_at)),
        ("progress", f"{s.progress:.1%}: sent {s.stats_messages_sent:,}, skipped {s.recipients_skipped:,}, "
                     f"failed {s.recipients_failed:,} of {s.recipients_total:,}"),
        ("channels created", f"{s.stats_channels_created:,}" if s.stats_channels_created else ""),
        ("read by", f"{s.stats_users_read:,} users" if s.stats_users_read else ""),
        ("started", when(s.stats_started_at)), ("completed", when(s.stats_completed_at)),
        ("created", when(campaign.created_at)), ("updated", when(campaign.updated_at)),
    ])


@app.command("create")
def create(file: Annotated[Path, typer.Argument(
               metavar="FILE", dir_okay=False, allow_dash=True,
               help="A JSON object of CreateCampaignRequest's fields ('-': stdin).")],
           as_json: JsonOption = False, data_dir: DataDirOption = None) -> None:
    """Create a draft campaign from a JSON file: id, name, sender_id, segment_ids or user_ids,
    message_template {"text": …}, channel_template {"type": …, "id": …}, create_channels, …"""
    if str(file) != "-" and not file.is_file():
        raise typer.BadParameter(f"{file} is not a file", param_hint="'FILE'")

    async def body(herald: HeraldClient) -> None:
        show(await herald.create_campaign(_read_campaign(file)), as_json)

    run(data_dir, body)


@app.command("get")
def get(id: CampaignId, as_json: JsonOption = False,
        data_dir: DataDirOption = None) -> None:
    """Show a campaign, its status and progress."""

    async def body(herald: HeraldClient) -> None:
        show(await herald.get_campaign(id), as_json)

    run(data_dir, body)


@app.command("list")
def list_(status: Annotated[list[str] | None, typer.Option(
              "--status", metavar="STATUS", show_default=False,
              help="draft, scheduled, in_progress, completed or stopped (repeatable).")] = None,
          filter: FilterOption = None, sort: SortOption = None, limit: LimitOption = 100,
          as_json: JsonOption = False, data_dir: DataDirOption = None) -> None:
    """List campaigns, those of a status or a filter (on id, name, status, sender_id, segments,
    user_ids, created_at, updated_at, …)."""
    query = json_object(filter, "--filter")
    if status:
        by_status = {"status": {"$in": status}}
        query = {"$and": [query, by_status]} if query else by_status

    async def body(herald: HeraldClient) -> None:
        from services.kit.limits import CAMPAIGNS_PAGE

        campaigns = herald.iter_campaigns(query, sort, page_size=page_size(limit, CAMPAIGNS_PAGE))
        await show_list(campaigns, limit=limit, as_json=as_json, columns=COLUMNS, row=row, noun="campaigns")

    run(data_dir, body)


@app.command("start")
def start(id: CampaignId,
          at: Annotated[str | None, typer.Option(
              "--at", metavar="TIME", show_default=False,
              help="Start then instead of now: RFC 3339, e.g. 2030-01-01T09:00:00Z (no zone: UTC).")] = None,
          stop_at: Annotated[str | None, typer.Option(
              "--stop-at", metavar="TIME", show_default=False, help="Stop it then if still sending.")] = None,
          as_json: JsonOption = False, data_dir: DataDirOption = None) -> None:
    """Start a draft campaign now or at a time (a scheduled one is rescheduled). A campaign is sent once."""
    scheduled_for, stop = _moment(at, "--at"), _moment(stop_at, "--stop-at")

    async def body(herald: HeraldClient) -> None:
        from herald.campaign.v1 import campaign_pb2

        campaign = await herald.start_campaign(id, scheduled_for, stop)
        if as_json:
            print_json(campaign)
        elif campaign.status == campaign_pb2.CAMPAIGN_STATUS_SCHEDULED:
            console().print(f"scheduled campaign {id} for {when(campaign.scheduled_for)}")
        else:
            console().print(f"started campaign {id} (follow it: herald campaigns watch {id})")

    run(data_dir, body)


@app.command("pause")
def pause(id: CampaignId, as_json: JsonOption = False, data_dir: DataDirOption = None) -> None:
    """Pause a sending campaign between batches (resume it later; change its text meanwhile)."""
    _move(id, "paused", lambda herald: herald.pause_campaign(id), as_json, data_dir)


@app.command("resume")
def resume(id: CampaignId, as_json: JsonOption = False, data_dir: DataDirOption = None) -> None:
    """Resume a paused campaign from where it halted."""
    _move(id, "resumed", lambda herald: herald.resume_campaign(id), as_json, data_dir)


@app.command("stop")
def stop(id: CampaignId, as_json: JsonOption = False, data_dir: DataDirOption = None) -> None:
    """Stop a scheduled, sending or paused campaign."""
    _move(id, "stopped", lambda herald: herald.stop_campaign(id), as_json, data_dir)


def _move(id: str, done: str, call: Callable[[HeraldClient], Awaitable[campaign_pb2.Campaign]], as_json: bool,
          data_dir: Path | None) -> None:
    """Pause, resume or stop: the campaign as it is after, or one line saying how far it got."""

    async def body(herald: HeraldClient) -> None:
        campaign = await call(herald)
        if as_json:
            print_json(campaign)
        else:
            console().print(f"{done} campaign {id} ({campaign.stats.progress:.1%} sent)")

    run(data_dir, body)


@app.command("delete")
def delete(ids: Annotated[list[str], typer.Argument(metavar="ID", help="Campaign ids.")],
           data_dir: DataDirOption = None) -> None:
    """Delete campaigns (not while they send or are paused)."""

    async def body(herald: HeraldClient) -> None:
        for id in ids:
            await herald.delete_campaign(id)
            console().print(f"deleted campaign {id}")

    run(data_dir, body)


@app.command("preview")
def preview(id: CampaignId,
            receiver: Annotated[str | None, typer.Option(
                "--receiver", metavar="USER", show_default=False,
                help="The receiving user (campaigns to user ids or user segments).")] = None,
            cid: Annotated[str | None, typer.Option(
                "--cid", metavar="CID", show_default=False,
                help="The receiving channel, type:id (campaigns to channel segments).")] = None,
            as_json: JsonOption = False, data_dir: DataDirOption = None) -> None:
    """Show what one recipient would get, rendered as sending renders it, in any status: the
    text, the channel (whether it exists or would be created) and its members; or why the
    recipient would be skipped or failed. Nothing is written or sent."""
    if (receiver is None) == (cid is None):
        raise typer.BadParameter("give --receiver USER or --cid CID (exactly one)", param_hint="'--receiver' / '--cid'")

    async def body(herald: HeraldClient) -> None:
        shown = await herald.preview_campaign(id, receiver_id=receiver or "", cid=cid or "")
        if as_json:
            print_json(shown)
        else:
            show_preview(shown)

    run(data_dir, body)


def show_preview(preview: campaign_pb2.CampaignPreview) -> None:
    from herald.campaign.v1 import campaign_pb2

    message = preview.message
    channel = ""
    if preview.cid:
        channel = "exists" if preview.channel_exists else "would be created"
    print_details([
        ("recipient", preview.target_id),
        ("status", enum_name(campaign_pb2.PreviewStatus.Name(preview.status))),
        ("reason", preview.reason), ("detail", preview.detail),
        ("cid", preview.cid), ("channel", channel), ("members", ", ".join(preview.member_ids)),
        ("text", message.text),
        ("attachments", compact([struct(a) for a in message.attachments]) if message.attachments else ""),
        ("custom", compact(struct(message.custom)) if preview.HasField("message") else ""),
        ("poll", message.poll_id),
    ])


@app.command("test-send")
def test_send(id: CampaignId,
              to: Annotated[list[str] | None, typer.Option(
                  "--to", metavar="USER", show_default=False,
                  help="A receiving user (campaigns to user ids or user segments); repeatable, up to 10.")] = None,
              cids: Annotated[list[str] | None, typer.Option(
                  "--cid", metavar="CID", show_default=False,
                  help="A receiving channel, type:id (campaigns to channel segments); repeatable, up to 10.")] = None,
              request_id: Annotated[str | None, typer.Option(
                  "--request-id", metavar="KEY", show_default=False,
                  help="Idempotency key: the same command again with it sends nobody twice.")] = None,
              as_json: JsonOption = False, data_dir: DataDirOption = None) -> None:
    """Send real test messages of a campaign to a few users or channels, in any status but in
    progress or paused: marked custom.test, with their events and push, counted in the monthly
    capacity, never in the campaign's stats. Shows what each recipient got, or why it was skipped
    or failed."""
    if bool(to) == bool(cids):
        raise typer.BadParameter("give --to USER or --cid CID (one kind, repeatable)", param_hint="'--to' / '--cid'")

    async def body(herald: HeraldClient) -> None:
        sent = await herald.send_test_campaign(id, user_ids=to or [], cids=cids or [], request_id=request_id)
        if as_json:
            print_json(sent)
            return
        print_table(TEST_SEND_COLUMNS, [_test_send_row(r) for r in sent.recipients])
        note(f"request id {sent.request_id} (--request-id {sent.request_id} repeats it without resending)")

    run(data_dir, body)


TEST_SEND_COLUMNS = ("RECIPIENT", "STATUS", "REASON", "CID", "CHANNEL", "MESSAGE", "TEXT")


def _test_send_row(recipient: campaign_pb2.CampaignPreview) -> tuple[str, ...]:
    from herald.campaign.v1 import campaign_pb2

    channel = ("existed" if recipient.channel_exists else "created") if recipient.cid else ""
    return (recipient.target_id, enum_name(campaign_pb2.PreviewStatus.Name(recipient.status)), recipient.reason,
            recipient.cid, channel, recipient.message.id, recipient.message.text)


LinesOption = Annotated[bool, typer.Option("--lines", help="One line per update, even on a terminal.")]


@app.command("watch", epilog=WATCH_EXITS)
def watch(id: CampaignId, lines: LinesOption = False,
          as_json: JsonOption = False, data_dir: DataDirOption = None) -> None:
    """Follow a campaign until it completes or stops: a live progress bar with sent, skipped,
    failed, rate and ETA on a terminal; one line per update in a pipe or with --lines; one
    JSON object per update with --json."""

    async def body(herald: HeraldClient) -> int:
        return await follow(herald, id, mode="json" if as_json else "lines" if lines else "auto")

    run(data_dir, body)


def watch_alias(id: CampaignId, data_dir: DataDirOption = None) -> None:
    """Follow a campaign until it ends, one line per update (herald campaigns watch ID --lines)."""
    watch(id, lines=True, as_json=False, data_dir=data_dir)


async def follow(herald: HeraldClient, id: str, *, mode: str = "auto") -> int:
    """Watches campaign `id` to its end, shown as `mode` says (auto: a bar on a terminal, else
    lines; lines; json); returns the exit code of how it ended (0 completed, 3 stopped)."""
    from herald.campaign.v1 import campaign_pb2

    last: campaign_pb2.Campaign | None = None
    if mode == "auto" and console().is_terminal:
        with _Bar(id) as bar:
            async for campaign in herald.watch_campaign(id):
                bar.show(campaign)
                last = campaign
    else:
        async for campaign in herald.watch_campaign(id):
            if mode == "json":
                print_json(campaign)
            else:
                print(_line(campaign), flush=True)
            last = campaign
    if last is None:  # the stream ended before the first update: not seen since
        raise CliError(f"campaign {id}: the watch ended before any update")
    if mode == "auto" and console().is_terminal:  # under the bar, the end as a pipe sees it last
        print(_line(last), flush=True)
    return EXIT_STOPPED if last.status == campaign_pb2.CAMPAIGN_STATUS_STOPPED else EXIT_OK


def _line(campaign: campaign_pb2.Campaign) -> str:
    """One update as `herald watch` has always printed it."""
    from herald.campaign.v1 import campaign_pb2

    s = campaign.stats
    name = campaign_pb2.CampaignStatus.Name(campaign.status).removeprefix("CAMPAIGN_STATUS_").lower()
    return (f"{name:11} {s.progress:6.1%}  sent {s.stats_messages_sent}  skipped {s.recipients_skipped}  "
            f"failed {s.recipients_failed}  of {s.recipients_total}  channels created {s.stats_channels_created}  "
            f"read {s.stats_users_read}")


class _Bar:
    """A rich progress bar of one campaign: its status, the bar, %, counters, the rate (recipients
    a second since this watch first saw it sending) and the time left at that rate."""

    def __init__(self, id: str) -> None:
        from rich.markup import escape
        from rich.progress import BarColumn, Progress, TextColumn

        self.progress = Progress(
            TextColumn("{task.description} [bold]{task.fields[status]}[/]"), BarColumn(),
            TextColumn("{task.percentage:>5.1f}%"),
            TextColumn("sent {task.fields[sent]:,}  skipped {task.fields[skipped]:,}  failed {task.fields[failed]:,}"
                       "  of {task.fields[of]:,}"),
            TextColumn("{task.fields[rate]}"), TextColumn("{task.fields[eta]}"),
            console=console(), refresh_per_second=8)
        self.task = self.progress.add_task(escape(id), total=1, status="", sent=0, skipped=0, failed=0, of=0,
                                           rate="", eta="")
        self.first: tuple[float, float] | None = None  # (monotonic time, recipients handled) first seen sending

    def show(self, campaign: campaign_pb2.Campaign) -> None:
        from herald.campaign.v1 import campaign_pb2

        s = campaign.stats
        total = s.recipients_total or 1
        handled = s.progress * s.recipients_total
        now = time.monotonic()
        rate = eta = ""
        if campaign.status == campaign_pb2.CAMPAIGN_STATUS_IN_PROGRESS:
            if self.first is None:
                self.first = (now, handled)
            elif now > self.first[0] and handled > self.first[1]:
                speed = (handled - self.first[1]) / (now - self.first[0])
                rate, eta = f"{speed:,.0f}/s", f"ETA {_duration((s.recipients_total - handled) / speed)}"
        elif s.HasField("stats_started_at") and s.HasField("stats_completed_at"):
            took = (s.stats_completed_at.ToNanoseconds() - s.stats_started_at.ToNanoseconds()) / 1e9
            rate = f"{handled / took:,.0f}/s" if took > 0 and handled else ""
            eta = f"took {_duration(took)}"
        self.progress.update(self.task, total=total, completed=s.progress * total, status=status(campaign),
                             sent=s.stats_messages_sent, skipped=s.recipients_skipped, failed=s.recipients_failed,
                             of=s.recipients_total, rate=rate, eta=eta)

    def __enter__(self) -> "_Bar":
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


def _duration(seconds: float) -> str:
    """`0.4 s`, `12 s`, `3:05`, `1:02:03`."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _read_campaign(file: Path) -> dict[str, Any]:
    import sys

    from herald.campaign.v1 import campaign_service_pb2
    from services.client.messages import build

    name = "stdin" if str(file) == "-" else file.name
    try:
        text = sys.stdin.read() if str(file) == "-" else file.read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read {file}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise CliError(f"{name}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"{name}: not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if not isinstance(data, dict):
        raise CliError(f"{name}: not a JSON object")
    try:
        build(campaign_service_pb2.CreateCampaignRequest, data)
    except (TypeError, ValueError) as exc:
        raise CliError(f"{name}: {exc}") from None
    return data


def _moment(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a time like 2030-01-01T09:00:00Z",
                                 param_hint=f"'{option}'") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
