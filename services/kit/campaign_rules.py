"""The rules of a campaign's fields (DESIGN §4–5), written once: campaign_svc applies them where
a campaign enters (Create/UpdateCampaign), delivery_svc where its snapshot enters
(StartDelivery, so that a delivery never starts on what would fail it later). Fields are named
`prefix` + their path: "" for a request, "campaign." for a snapshot. Templates are checked by
compiling them (services.kit.templates), each service once, where it needs them; campaign_svc
also renders them once under the render budget (check_render_budget)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

from herald.common.v1 import common_pb2
from services.kit import reasons
from services.kit.errors import Violations
from services.kit.fields import check_channel_type, check_cid, check_id, check_id_list, check_text
from services.kit.limits import (MAX_ATTACHMENTS, MAX_AUDIENCE_USERS, MAX_MEMBERS, MAX_RENDER_VALUE,
                                 MAX_SEGMENTS_PER_AUDIENCE, MAX_TEAM, MAX_TEST_RECIPIENTS)
from services.kit.sandbox import RenderBudget, RenderBudgetExceeded, render
from services.kit.templates import Tree, is_template


def check_audience(v: Violations, segment_ids: Sequence[str], user_ids: Sequence[str], prefix: str = "") -> None:
    """Exactly one of segment_ids and user_ids, each a list of valid ids within its limit."""
    if not segment_ids and not user_ids:
        v.add(f"{prefix}segment_ids", "give segment_ids or user_ids (exactly one of them)")
    elif segment_ids and user_ids:
        v.add(f"{prefix}user_ids", "give segment_ids or user_ids, not both")
    check_id_list(v, segment_ids, f"{prefix}segment_ids", limit=MAX_SEGMENTS_PER_AUDIENCE, required=False)
    check_id_list(v, user_ids, f"{prefix}user_ids", limit=MAX_AUDIENCE_USERS, required=False)


def check_sender_options(v: Violations, sender_mode: int, sender_visibility: int, prefix: str = "") -> None:
    _check_enum(v, common_pb2.SenderMode, sender_mode, f"{prefix}sender_mode")
    _check_enum(v, common_pb2.SenderVisibility, sender_visibility, f"{prefix}sender_visibility")


def check_max_send_rate(v: Violations, rate: float, prefix: str = "") -> None:
    v.check(math.isfinite(rate) and rate >= 0, f"{prefix}max_send_rate",
            "must be a finite number of recipients per second, 0 or more (0 = none of its own)")


def check_message_template(v: Violations, template: common_pb2.MessageTemplate, prefix: str = "") -> None:
    path = f"{prefix}message_template"
    if v.check(bool(template.text), f"{path}.text", "is required"):
        check_text(v, template.text, f"{path}.text")
    check_id(v, template.poll_id, f"{path}.poll_id", required=False)
    count = len(template.attachments)
    v.check(count <= MAX_ATTACHMENTS, f"{path}.attachments",
            f"must list at most {MAX_ATTACHMENTS} attachments (got {count})")


def check_channel_template(v: Violations, template: common_pb2.ChannelTemplate | None, create_channels: bool,
                           prefix: str = "") -> None:
    """The parts of a channel template that are the same for every recipient: what would fail
    them all at send time is refused now (templated parts are checked per recipient, rendered)."""
    path = f"{prefix}channel_template"
    if template is None:
        v.check(not create_channels, path, "is required when create_channels is true")
        return
    check_channel_type(v, template.type, f"{path}.type")
    check_text(v, template.team, f"{path}.team", MAX_TEAM)
    _check_fixed_id(v, template.id, f"{path}.id", required=False)
    if template.members and template.members_template:
        v.add(f"{path}.members_template", "give members or members_template, not both")
    for name, user_ids in (("members", list(template.members)),
                           ("members_template", [m.user_id for m in template.members_template])):
        if len(user_ids) > MAX_MEMBERS:
            v.add(f"{path}.{name}", f"must list at most {MAX_MEMBERS} members (got {len(user_ids)})")
            continue
        suffix = ".user_id" if name == "members_template" else ""
        for i, user_id in enumerate(user_ids):
            if not _check_fixed_id(v, user_id, f"{path}.{name}[{i}]{suffix}"):
                break  # the first bad member is named


def _check_fixed_id(v: Violations, value: str, field: str, *, required: bool = True) -> bool:
    """An id that may be a template: a plain one must be a valid id now; a template's output
    is checked per recipient when sending (a bad one fails that recipient, not the campaign)."""
    if is_template(value):
        return check_text(v, value, field)
    return check_id(v, value, field, required=required)


def check_preview_recipient(v: Violations, receiver_id: str, cid: str, *, channels: bool | None = None) -> None:
    """The recipient a preview names: exactly one of `receiver_id` (a user target) and `cid` (a
    channel target), each a valid id; with `channels` known (the audience is channels, or users),
    the one that audience has."""
    if receiver_id and cid:
        v.add("cid", "give receiver_id (user audiences) or cid (channel audiences), not both")
        return
    if not receiver_id and not cid:
        v.add("cid" if channels else "receiver_id",
              "give receiver_id (user audiences) or cid (channel audiences): exactly one")
        return
    if cid:
        if check_cid(v, cid, "cid") and channels is False:
            v.add("cid", "the campaign's audience is users: give receiver_id")
    elif check_id(v, receiver_id, "receiver_id") and channels:
        v.add("receiver_id", "the campaign's audience is channel segments: give cid")


def check_test_recipients(v: Violations, user_ids: Sequence[str], cids: Sequence[str], *, sender_id: str = "",
                          channels: bool | None = None) -> None:
    """The recipients a test send names: exactly one of `user_ids` (user targets, never the
    sender: a campaign never reaches its sender) and `cids` (channel targets), 1..MAX_TEST_RECIPIENTS
    valid ids (the first bad one named); with `channels` known (the audience is channels, or
    users), the list that audience has."""
    if user_ids and cids:
        v.add("cids", "give user_ids (user audiences) or cids (channel audiences), not both")
        return
    if not user_ids and not cids:
        v.add("cids" if channels else "user_ids",
              f"give user_ids (user audiences) or cids (channel audiences): 1..{MAX_TEST_RECIPIENTS} of them")
        return
    field, ids, check = ("cids", cids, check_cid) if cids else ("user_ids", user_ids, check_id)
    if len(ids) > MAX_TEST_RECIPIENTS:
        v.add(field, f"must list at most {MAX_TEST_RECIPIENTS} recipients (got {len(ids)})")
        return
    if not all(check(v, value, f"{field}[{i}]") for i, value in enumerate(ids)):
        return
    if cids and channels is False:
        v.add("cids", "the campaign's audience is users: give user_ids")
    elif user_ids and channels:
        v.add("user_ids", "the campaign's audience is channel segments: give cids")
    elif sender_id and sender_id in user_ids:
        v.add(f"user_ids[{list(user_ids).index(sender_id)}]", "is the campaign's sender, who never receives it")


def _check_enum(v: Violations, enum_type: EnumTypeWrapper, value: int, field: str) -> None:
    v.check(value in enum_type.values(), field, f"unknown value {value}; use one of {', '.join(enum_type.keys())}")


def check_render_budget(v: Violations, trees: Sequence[Tree]) -> None:
    """Renders templates once for a recipient without any data, under one budget (as one recipient's
    message, or channel, renders at send time): a template whose constant parts already break the
    budget breaks it for every recipient, so it is refused now, naming the field where it ran out.
    Any other error is left to the recipients (real data renders differently)."""
    budget = RenderBudget()
    for tree in trees:
        for field, template in tree.templates:
            try:
                render(template, {}, budget, MAX_RENDER_VALUE)
            except RenderBudgetExceeded as exc:
                v.add(field, f"the template cannot render within the budget for any recipient: {exc}",
                      reasons.TEMPLATE_INVALID)
                return
            except Exception:  # noqa: BLE001, S112 — undefined variables, types: decided per recipient
                continue
