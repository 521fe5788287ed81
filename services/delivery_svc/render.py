"""A campaign's templates, compiled once per delivery run, and the per-recipient rendering.

Rendering is the hot path of a delivery (one channel spec and one message per recipient), so
what does not depend on the recipient is built once: static values are reused as they are, and
the `receiver` / `channel` variables are only built when a template refers to them. Each
recipient's message, and its channel, render under a budget (services.kit.sandbox); a campaign
whose templates run Jinja code renders its batches in a worker thread (`off_loop`), so that a
costly template never holds up the event loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

import jinja2
from jinja2 import nodes

from herald.campaign.v1 import campaign_pb2
from herald.common.v1 import common_pb2
from herald.segment.v1 import directory_pb2, directory_service_pb2
from services.kit.errors import InvalidArgument, Violations
from services.kit.fields import check_id, check_user_channel_spec
from services.kit.limits import MAX_REASON_CHARS, MAX_RENDER_VALUE, MAX_TEXT_CHARS
from services.kit.protos import struct_to_dict
from services.kit.sandbox import OutputTooLong, RenderBudget
from services.kit.templates import (USER_TARGET_VARIABLES, Tree, compile_text, environment, render_text,
                                    uses_variable)

DEFAULT_CHANNEL_TYPE = "messaging"

TEXT_TOO_LONG = "text_too_long"
RENDER_ERROR = "render_error"
INVALID_CHANNEL = "invalid_channel"


P = ParamSpec("P")
T = TypeVar("T")

# Set while a batch renders in a worker thread: once the wait for it is cancelled, the worker stops
# at its next recipient instead of rendering the rest of the batch for nobody.
_abandoned: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar("render_abandoned",
                                                                                   default=None)


class RenderAbandoned(Exception):
    """The batch being rendered in a worker thread is no longer waited for."""


class RecipientFailed(Exception):
    """A recipient whose message or channel could not be made; `reason` goes to the log."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason


# --- proto → template variables ---------------------------------------------------------------

def user_to_dict(user: directory_pb2.User) -> dict[str, Any]:
    return {"id": user.id, "name": user.name, "role": user.role, "teams": list(user.teams),
            "custom": struct_to_dict(user.custom) if user.custom.fields else {}}


def sender_to_dict(campaign: campaign_pb2.Campaign, user: directory_pb2.User | None) -> dict[str, Any]:
    """The sender as the directory has it (`user`), else as the snapshot carries it, else only its
    id: a sender deleted since the campaign was written still renders."""
    if user is not None:
        return user_to_dict(user)
    if campaign.sender.id == campaign.sender_id:
        return user_to_dict(campaign.sender)
    return {"id": campaign.sender_id, "name": "", "role": "", "teams": [], "custom": {}}


def channel_to_dict(channel: directory_pb2.Channel) -> dict[str, Any]:
    members = [{"user_id": m.user_id, "channel_role": m.channel_role} for m in channel.members]
    custom = struct_to_dict(channel.custom) if channel.custom.fields else {}
    return {**custom, "cid": channel.cid, "type": channel.type, "id": channel.id, "team": channel.team,
            "custom": custom, "created_by_id": channel.created_by_id, "members": members,
            "member_count": len(members)}


# --- the fast path of simple templates --------------------------------------------------------

_MISSING = object()
_DICT_ATTRIBUTES = frozenset(dir(dict))


class LookupTemplate:
    """A template made only of literal text and `{{ name.attr.attr }}` lookups, rendered by
    plain dict look-ups (about ten times faster than a Jinja render, which builds a Context per
    call). It renders exactly what Jinja's sandbox with ChainableUndefined renders: a missing
    key anywhere makes the expression empty, any other value is `str()`-ed. Whenever a value on
    the way is not a dict (where Jinja's attribute rules differ), it renders with Jinja."""

    __slots__ = ("parts", "jinja")

    def __init__(self, parts: list[str | tuple[str, ...]], jinja: jinja2.Template) -> None:
        self.parts = parts  # literals, and (name, attr, ...) look-up paths
        self.jinja = jinja

    @classmethod
    def of(cls, template: Any, source: str) -> Any:
        """The fast form of a compiled template when it has one, else the template itself."""
        if not isinstance(template, jinja2.Template):
            return template
        body = environment().parse(source).body
        parts: list[str | tuple[str, ...]] = []
        for node in body:
            if not isinstance(node, nodes.Output):
                return template
            for child in node.nodes:
                if isinstance(child, nodes.TemplateData):
                    parts.append(child.data)
                    continue
                path = _lookup_path(child)
                if path is None:
                    return template
                parts.append(path)
        return cls(parts, template)

    def render(self, context: Mapping[str, Any], budget: RenderBudget, max_chars: int) -> str:
        out = []
        for part in self.parts:
            if part.__class__ is str:
                out.append(part)
                continue
            value = context.get(part[0], _MISSING)
            for attribute in part[1:]:
                if value is _MISSING:
                    break
                if value.__class__ is not dict:
                    return render_text(self.jinja, context, budget, max_chars)
                value = value.get(attribute, _MISSING)
            if value is _MISSING:
                continue
            out.append(value if value.__class__ is str else str(value))
        return "".join(out)


def _lookup_path(node: Any) -> tuple[str, ...] | None:
    attributes: list[str] = []
    while isinstance(node, nodes.Getattr):
        if node.attr.startswith("_") or node.attr in _DICT_ATTRIBUTES:
            return None
        attributes.append(node.attr)
        node = node.node
    if not isinstance(node, nodes.Name) or node.ctx != "load":
        return None
    return (node.name, *reversed(attributes))


# A compiled template string: its fast form, a Jinja template, or a plain string.
Compiled = LookupTemplate | jinja2.Template | str


def compile_fast(source: str, field: str, variables: frozenset[str]) -> Compiled:
    """compile_text (same checks and errors), in its fast form when it has one."""
    return LookupTemplate.of(compile_text(source, field, variables), source)


def render(compiled: Compiled, context: Mapping[str, Any], budget: RenderBudget,
           max_chars: int = MAX_RENDER_VALUE) -> str:
    """A compiled string rendered under `budget` (the fast path needs none: it only looks up)."""
    if isinstance(compiled, LookupTemplate):
        return compiled.render(context, budget, max_chars)
    return render_text(compiled, context, budget, max_chars)


# --- compiled templates -----------------------------------------------------------------------

@dataclass
class _MemberTemplate:
    user_id: Compiled
    channel_role: str
    custom: Tree | None


class CampaignTemplates:
    """The message and channel templates of one campaign, compiled once."""

    def __init__(self, campaign: campaign_pb2.Campaign) -> None:
        self.campaign_id = campaign.id
        violations = Violations()
        message = campaign.message_template
        channel = campaign.channel_template
        self.text = _text(violations, message.text, "campaign.message_template.text")
        attachments = [struct_to_dict(a) for a in message.attachments]
        custom = struct_to_dict(message.custom)
        self.attachments = _tree(violations, attachments, "campaign.message_template.attachments")
        self.custom = _tree(violations, custom, "campaign.message_template.custom")
        self.static_attachments = attachments if not uses_any(attachments) else None
        self.static_custom = {**custom, "campaign_id": campaign.id} if not uses_any(custom) else None
        self.poll_id = message.poll_id

        self.channel_type = channel.type or DEFAULT_CHANNEL_TYPE
        self.channel_id = _text(violations, channel.id, "campaign.channel_template.id")
        self.channel_team = _text(violations, channel.team, "campaign.channel_template.team")
        channel_custom = struct_to_dict(channel.custom)
        self.channel_custom = _tree(violations, channel_custom, "campaign.channel_template.custom") \
            if channel_custom else None
        self.members = self._compile_members(violations, channel)
        violations.raise_if_any()
        # Lookups and static strings cost next to nothing; anything else runs Jinja code.
        self.runs_code = any(isinstance(part, jinja2.Template) for part in (
            self.text, self.channel_id, self.channel_team, *(m.user_id for m in self.members))) or any(
            tree.templates for tree in (self.attachments, self.custom, self.channel_custom,
                                        *(m.custom for m in self.members)) if tree is not None)

        message_sources = [message.text, attachments, custom]
        channel_sources = [channel.id, channel.team, channel_custom, list(channel.members),
                           [[m.user_id, struct_to_dict(m.custom)] for m in channel.members_template]]
        # Decided once per campaign: the receiver is only built when some template part uses it.
        self.needs_receiver = uses_variable([message_sources, channel_sources], "receiver")
        self.needs_channel = uses_variable(message_sources, "channel")
        # Only an absent id template derives the channel id; one that renders empty is an error.
        self.derives_channel_id = not channel.id
        self.static_members = self._static_members(channel)

    @staticmethod
    def _compile_members(violations: Violations, channel: common_pb2.ChannelTemplate) -> list[_MemberTemplate]:
        path = "campaign.channel_template"
        if channel.members_template:
            return [_MemberTemplate(
                _text(violations, m.user_id, f"{path}.members_template[{i}].user_id"), m.channel_role,
                _tree(violations, struct_to_dict(m.custom), f"{path}.members_template[{i}].custom")
                if m.custom.fields else None)
                for i, m in enumerate(channel.members_template)]
        return [_MemberTemplate(_text(violations, u, f"{path}.members[{i}]"), "", None)
                for i, u in enumerate(channel.members)]

    def _static_members(self, channel: common_pb2.ChannelTemplate) -> list[common_pb2.ChannelMemberTemplate] | None:
        """The extra members as protos when no template is inside them (built once, not per recipient)."""
        if uses_any([m.user_id for m in channel.members_template]) or uses_any(list(channel.members)) or any(
                uses_any(struct_to_dict(m.custom)) for m in channel.members_template):
            return None
        if channel.members_template:
            return [common_pb2.ChannelMemberTemplate(user_id=m.user_id, channel_role=m.channel_role, custom=m.custom)
                    for m in channel.members_template]
        return [common_pb2.ChannelMemberTemplate(user_id=u) for u in channel.members]

    async def off_loop(self, work: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Runs `work` (rendering a batch) in a worker thread when the templates run Jinja code,
        which may cost a whole budget per recipient; in place otherwise (cheaper than the hop)."""
        if not self.runs_code:
            return work(*args, **kwargs)
        abandoned = threading.Event()
        token = _abandoned.set(abandoned)  # the worker runs in a copy of this context
        try:
            return await asyncio.to_thread(work, *args, **kwargs)
        finally:
            _abandoned.reset(token)
            abandoned.set()

    # --- per recipient ---

    def user_channel_spec(self, receiver_id: str, context: dict[str, Any]) -> directory_service_pb2.ChannelSpec:
        """The channel wanted for a user target; raises RecipientFailed on a rendering error
        (`render_error`) or a rendered spec the segment service would refuse (`invalid_channel`)."""
        _check_abandoned()
        budget = RenderBudget()  # the channel's templates, together
        try:
            spec = directory_service_pb2.ChannelSpec(
                recipient_id=receiver_id, receiver_id=receiver_id, type=self.channel_type,
                id=render(self.channel_id, context, budget), team=render(self.channel_team, context, budget))
            if self.channel_custom is not None:
                spec.custom.update(self.channel_custom.render(context, budget))
            if self.static_members is not None:
                spec.members.extend(self.static_members)
            else:
                for member in self.members:
                    proto = spec.members.add(user_id=render(member.user_id, context, budget),
                                             channel_role=member.channel_role)
                    if member.custom is not None:
                        proto.custom.update(member.custom.render(context, budget))
        except Exception as exc:  # noqa: BLE001 — budget, sandbox SecurityError, undefined errors, bad values
            raise RecipientFailed(RENDER_ERROR, f"channel template: {exc}") from None
        self._check_rendered(spec)
        return spec

    def _check_rendered(self, spec: directory_service_pb2.ChannelSpec) -> None:
        """A rendered spec by the rules the segment service applies to the whole EnsureChannels
        batch (one bad spec would fail everyone's); the type and static members were checked once
        when the delivery started. An id template that renders empty is an error, not a derived id."""
        v = Violations()
        if not spec.id and not self.derives_channel_id:
            check_id(v, spec.id, "id")  # says it is required
        check_user_channel_spec(v, spec, type_=False, members=self.static_members is None)
        if v.items:
            raise RecipientFailed(invalid_channel_reason(v.items[0].field, v.items[0].description))

    def message(self, context: dict[str, Any]) -> tuple[str, list[Any], dict[str, Any]]:
        """Rendered (text, attachments, custom) for one recipient, under one budget (raises
        RecipientFailed)."""
        _check_abandoned()
        budget = RenderBudget()
        try:
            text = render(self.text, context, budget, MAX_TEXT_CHARS)
        except OutputTooLong:
            raise RecipientFailed(TEXT_TOO_LONG) from None
        except Exception as exc:  # noqa: BLE001 — budget, sandbox SecurityError, undefined errors, bad values
            raise RecipientFailed(RENDER_ERROR, f"message template: {exc}") from None
        try:
            attachments = self.static_attachments
            if attachments is None:
                attachments = self.attachments.render(context, budget)
            custom = self.static_custom
            if custom is None:
                custom = {**self.custom.render(context, budget), "campaign_id": self.campaign_id}
        except Exception as exc:  # noqa: BLE001
            raise RecipientFailed(RENDER_ERROR, f"message template: {exc}") from None
        if len(text) > MAX_TEXT_CHARS:  # the fast path's lookups are not cut short
            raise RecipientFailed(TEXT_TOO_LONG)
        return text, attachments, custom


def _check_abandoned() -> None:
    abandoned = _abandoned.get()
    if abandoned is not None and abandoned.is_set():
        raise RenderAbandoned()


def _text(violations: Violations, source: str, field: str) -> Compiled:
    """compile_fast, recording an error as a violation (the blank standing in is never rendered:
    CampaignTemplates raises them all)."""
    try:
        return compile_fast(source, field, USER_TARGET_VARIABLES)
    except InvalidArgument as exc:
        violations.items.extend(exc.violations)
        return ""


def _tree(violations: Violations, value: Any, field: str) -> Tree:
    """A Tree, recording an error as a violation (as _text)."""
    try:
        return Tree(value, field, USER_TARGET_VARIABLES)
    except InvalidArgument as exc:
        violations.items.extend(exc.violations)
        return Tree(None, field, USER_TARGET_VARIABLES)


def invalid_channel_reason(field: str, description: str) -> str:
    """`invalid_channel`, then ": detail" as far as the log's reason column holds it."""
    for reason in (f"{INVALID_CHANNEL}: {field} {description}", f"{INVALID_CHANNEL}: {field}"):
        if len(reason) <= MAX_REASON_CHARS:
            return reason
    return INVALID_CHANNEL


def uses_any(source: Any) -> bool:
    """Whether any string inside `source` is a template."""
    if isinstance(source, str):
        return "{{" in source or "{%" in source or "{#" in source
    if isinstance(source, dict):
        return any(uses_any(v) for v in source.values())
    if isinstance(source, list):
        return any(uses_any(v) for v in source)
    return False
