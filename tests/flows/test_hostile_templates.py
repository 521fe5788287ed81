"""Hostile templates through the three real services (DESIGN §10.3): a template whose constant parts
break the render budget is refused at create, naming its field; one that breaks it only with a
recipient's data fails that recipient alone (render_error, or text_too_long), its campaign
completes, and other campaigns sent alongside are untouched; no template changes what other
recipients see; and the delivery service answers a health check while the costliest allowed
template renders."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import grpc
import pytest
from google.protobuf import struct_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from herald.campaign.v1 import campaign_pb2, campaign_service_pb2, campaign_service_pb2_grpc
from herald.common.v1 import common_pb2
from herald.segment.v1 import directory_pb2, directory_service_pb2
from harness import error_reason, eventually, serve_system, violations

from delivery.helpers import Stubs, all_messages, all_recipients, get, struct

COMPLETED = campaign_pb2.CAMPAIGN_STATUS_COMPLETED
ONE_TO_ONE = common_pb2.ChannelTemplate(type="messaging", id="{{ receiver.id }}-{{ sender.id }}")
SENT, FAILED = 1, 3  # delivery_pb2.RECIPIENT_STATUS_SENT / _FAILED
NESTED_LOOPS = ("{% for i in range(1000) %}{% for j in range(1000) %}{% for k in range(1000) %}"
                "{% endfor %}{% endfor %}{% endfor %}")
# About 96,000 of the 100,000 operations, whoever the recipient is: the costliest kind (weighing and
# sorting a list) repeated; it renders (it stays within the budget), taking a noticeable time.
COSTLIEST_ALLOWED = ("{% set x = range(1000) | list %}{% for i in range(170) %}{% set y = x | sort %}{% endfor %}"
                     "Hi {{ receiver.name }}")


class System:
    def __init__(self, system) -> None:
        self.raw = system
        self.stubs = Stubs(system.channel("segment"), system.channel("delivery"))
        self.campaigns = campaign_service_pb2_grpc.CampaignServiceStub(system.channel("campaign"))

    async def create(self, text: str, **fields) -> str:
        fields.setdefault("message_template", common_pb2.MessageTemplate(text=text))
        fields.setdefault("create_channels", True)
        fields.setdefault("channel_template", ONE_TO_ONE)
        request = campaign_service_pb2.CreateCampaignRequest(sender_id="sender", **fields)
        return (await self.campaigns.CreateCampaign(request)).campaign.id

    async def start(self, campaign_id: str) -> None:
        await self.campaigns.StartCampaign(campaign_service_pb2.StartCampaignRequest(id=campaign_id))

    async def finish(self, campaign_id: str) -> campaign_pb2.Campaign:
        async def status():
            return (await self.campaigns.GetCampaign(campaign_service_pb2.GetCampaignRequest(id=campaign_id))).campaign
        return await eventually(status, lambda c: c.status == COMPLETED, what=f"campaign {campaign_id} completed")

    async def outcomes(self, campaign_id: str) -> dict[str, tuple[int, str]]:
        return {r.target_id: (r.status, r.reason)
                for r in await all_recipients(self.stubs, {"campaign_id": campaign_id})}


@pytest.fixture
async def make(new_db_url, tmp_path):
    async with AsyncExitStack() as stack:
        async def start(**settings) -> System:
            running = System(await stack.enter_async_context(serve_system(new_db_url, tmp_path, **settings)))
            users = [directory_pb2.User(id="sender", name="Ada", custom=struct({"tags": ["x"]}))]
            users += [directory_pb2.User(id=f"u{n}", name="a" * n, custom=struct({"n": 10 ** (n % 4), "tags": ["a"]}))
                      for n in range(1, 5)]
            await running.stubs.directory.UpsertUsers(directory_service_pb2.UpsertUsersRequest(users=users))
            return running
        yield start


@pytest.fixture
async def system(make):
    return await make()


def _custom(value: dict) -> struct_pb2.Struct:
    return struct(value)


@pytest.mark.parametrize("fields, field", [
    (dict(message_template=common_pb2.MessageTemplate(text='{{ "a" * 10**9 }}')), "message_template.text"),
    (dict(message_template=common_pb2.MessageTemplate(text=NESTED_LOOPS)), "message_template.text"),
    # 99,999 iterations, the call of range() and the loop itself: one operation too many.
    (dict(message_template=common_pb2.MessageTemplate(
        text="{% for i in range(99999) %}{{ receiver.name }}{% endfor %}")), "message_template.text"),
    (dict(message_template=common_pb2.MessageTemplate(text="hi", custom=_custom(
        {"x": {"y": "{{ range(10**8) | list }}"}}))), "message_template.custom.x.y"),
    (dict(message_template=common_pb2.MessageTemplate(text="hi", attachments=[_custom(
        {"title": '{{ "a" | center(10**9) }}'})])), "message_template.attachments[0].title"),
    (dict(channel_template=common_pb2.ChannelTemplate(type="messaging", id='{{ "{:999999999}".format(1) }}')),
     "channel_template.id"),
    # Two templates within the budget alone, not together (one recipient's message renders both).
    (dict(message_template=common_pb2.MessageTemplate(
        text="{% for i in range(60000) %}{% endfor %}",
        custom=_custom({"x": "{% for i in range(60000) %}{% endfor %}"}))), "message_template.custom.x"),
    (dict(message_template=common_pb2.MessageTemplate(text="hi", custom=_custom(
        {"x": "{{ sender.name }}" + " " * 20_000}))), "message_template.custom.x"),
])
async def test_a_template_that_breaks_the_budget_for_anyone_is_refused_at_create(system, fields, field):
    fields.setdefault("message_template", common_pb2.MessageTemplate(text="hi"))
    for create in (system.campaigns.CreateCampaign, None):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            if create is not None:
                await create(campaign_service_pb2.CreateCampaignRequest(sender_id="sender", user_ids=["u1"], **fields))
            else:  # the same rule on update
                draft = await system.create("hi", user_ids=["u1"])
                await system.campaigns.UpdateCampaign(campaign_service_pb2.UpdateCampaignRequest(
                    id=draft, sender_id="sender", user_ids=["u1"], **fields))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
        assert (violations(caught.value), error_reason(caught.value)) == ([field], ("campaign.herald", "TEMPLATE_INVALID"))


async def test_hostile_templates_fail_only_their_recipients(system):
    audience = ["u1", "u2", "u3", "u4"]  # names "a" .. "aaaa"; custom.n 10, 100, 1000, 1
    templates = {
        "normal": "Hi {{ receiver.name }}",
        # Repetition of receiver data: 1,500 times a name of 1..4 characters, 5,000 at most.
        "repeated": "{% for i in range(1500) %}{{ receiver.name }}{% endfor %}",
        "multiplied": "{{ (receiver.name * 30000) | length }}",
        "multiplied past any text": "{{ receiver.name * 100000 }}",
        "repeated past any text": "{% for i in range(9999) %}{{ receiver.name }}{% endfor %}",
        # Nested loops as deep as the receiver's data says.
        "nested": "{% for i in range(receiver.custom.n) %}{% for j in range(receiver.custom.n) %}{% endfor %}"
                  "{% endfor %}done",
        # Mutation of objects every recipient shares (the sender) or the next one could see.
        "appending": "{% set _ = receiver.custom.tags.append(1) %}{{ receiver.custom.tags | length }}",
        "appending to a method": "{% set _ = receiver.custom.items.append(1) %}",
        "updating": "{{ receiver.custom.update({'n': 0}) }}",
        "through the type": "{{ dict.update(sender.custom, {'tags': []}) }}{{ sender.custom.tags }}",
    }
    ids = {name: await system.create(text, user_ids=audience) for name, text in templates.items()}
    await asyncio.gather(*(system.start(campaign_id) for campaign_id in ids.values()))
    for campaign_id in ids.values():
        assert (await system.finish(campaign_id)).stats.progress == 1.0

    outcomes = {name: await system.outcomes(campaign_id) for name, campaign_id in ids.items()}
    assert outcomes["normal"] == {u: (SENT, "") for u in audience}
    assert outcomes["repeated"] == {"u1": (SENT, ""), "u2": (SENT, ""), "u3": (SENT, ""),
                                    "u4": (FAILED, "text_too_long")}
    assert outcomes["multiplied"] == {"u1": (SENT, ""), "u2": (SENT, ""), "u3": (FAILED, "render_error"),
                                      "u4": (FAILED, "render_error")}
    assert outcomes["nested"] == {"u1": (SENT, ""), "u2": (SENT, ""), "u3": (FAILED, "render_error"),
                                  "u4": (SENT, "")}
    assert outcomes["multiplied past any text"] == {u: (FAILED, "render_error") for u in audience}
    assert outcomes["repeated past any text"] == {u: (FAILED, "text_too_long") for u in audience}
    for name in ("appending", "appending to a method", "updating", "through the type"):
        assert outcomes[name] == {u: (FAILED, "render_error") for u in audience}, name

    texts = {m.cid: m.text for m in await all_messages(system.stubs, {"created_by_campaign_id": ids["normal"]})}
    assert sorted(texts.values()) == ["Hi a", "Hi aa", "Hi aaa", "Hi aaaa"]


async def test_health_is_answered_while_the_costliest_allowed_template_renders(make):
    """Three batches of ten recipients, each message the costliest allowed template. The first
    batch is written while the second renders (the pipeline composes one batch while the writer
    writes the one before): a health check made once the first batch shows is answered before the
    second batch is written. Were renders run on the event loop, the first batch would only be
    written (and seen) after the second had rendered, and the check would wait for the third."""
    system = await make(delivery_batch_size=10)
    audience = [f"h{n:02d}" for n in range(30)]
    await system.stubs.directory.UpsertUsers(directory_service_pb2.UpsertUsersRequest(
        users=[directory_pb2.User(id=u, name=u) for u in audience]))
    campaign_id = await system.create(COSTLIEST_ALLOWED, user_ids=audience)
    await system.start(campaign_id)
    await eventually(lambda: get(system.stubs, campaign_id), lambda d: d.stats.stats_messages_sent >= 10,
                     what="the first batch written")

    health = health_pb2_grpc.HealthStub(system.raw.channel("delivery"))
    # One check: on the event loop, it would wait for a whole batch's render; more checks would
    # only make the test depend on how many round trips a loaded machine fits into one render.
    answer = await health.Check(health_pb2.HealthCheckRequest(), timeout=30)
    delivery = await get(system.stubs, campaign_id)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING
    assert (delivery.status, delivery.stats.stats_messages_sent) == (campaign_pb2.CAMPAIGN_STATUS_IN_PROGRESS, 10)
    assert (await system.finish(campaign_id)).stats.stats_messages_sent == 30
