"""Unit tests of the per-recipient rendering: the fast lookup path renders exactly what Jinja's
sandbox renders, static parts are built once, and failures carry their reason."""

from __future__ import annotations

import pytest

from herald.campaign.v1 import campaign_pb2
from herald.common.v1 import common_pb2
from herald.segment.v1 import directory_pb2
from services.delivery_svc.render import (RENDER_ERROR, TEXT_TOO_LONG, CampaignTemplates, LookupTemplate,
                                          RecipientFailed, compile_fast, render, struct_to_dict, user_to_dict)
from services.kit.errors import InvalidArgument
from services.kit.sandbox import RenderBudget
from services.kit.templates import USER_TARGET_VARIABLES, compile_text, render_text, user_variables

from delivery.helpers import struct

CONTEXT = {
    "sender": user_variables({"id": "s1", "name": "Sam", "custom": {"team": "blue"}}),
    "receiver": user_variables({"id": "r1", "name": None, "custom": {"n": 1.5, "ok": True, "tags": ["a"],
                                                                      "nested": {"deep": 3}, "s": "text"}}),
}

SOURCES = [
    "Hi {{ receiver.name }}!", "{{ sender.name }} / {{ sender.team }} / {{ sender.custom.team }}",
    "{{ receiver.custom.n }}{{ receiver.custom.ok }}{{ receiver.custom.tags }}{{ receiver.custom.nested }}",
    "{{ receiver.custom.nested.deep }}", "[{{ receiver.custom.nickname }}]", "{{ receiver.custom.a.b.c }}",
    "{{ receiver.custom.s.upper }}", "{{ receiver.custom.s.missing }}", "{{ receiver.custom.tags.count }}",
    "{{ receiver.items }}", "{{ receiver.name | default('friend', true) }}", "{{ channel.id }}",
    "line\n{{ sender.id }}\n", "{% if receiver.custom.ok %}yes{% endif %}", "{{ sender.__class__ }}",
]


@pytest.mark.parametrize("source", SOURCES)
def test_fast_path_renders_what_jinja_renders(source):
    fast = compile_fast(source, "text", USER_TARGET_VARIABLES)
    reference = compile_text(source, "text", USER_TARGET_VARIABLES)
    assert render(fast, CONTEXT, RenderBudget()) == render_text(reference, CONTEXT, RenderBudget())


def test_fast_path_is_taken_for_plain_lookups_only():
    assert isinstance(compile_fast("Hi {{ receiver.name }}", "t", USER_TARGET_VARIABLES), LookupTemplate)
    assert not isinstance(compile_fast("{{ receiver.name | upper }}", "t", USER_TARGET_VARIABLES), LookupTemplate)
    assert compile_fast("plain", "t", USER_TARGET_VARIABLES) == "plain"


def test_compile_errors_name_the_field():
    with pytest.raises(InvalidArgument) as caught:
        compile_fast("{{ nobody.name }}", "campaign.message_template.text", USER_TARGET_VARIABLES)
    assert caught.value.violations[0].field == "campaign.message_template.text"


def _campaign(**template) -> campaign_pb2.Campaign:
    return campaign_pb2.Campaign(
        id="c1", sender_id="s1", message_template=common_pb2.MessageTemplate(**template),
        channel_template=common_pb2.ChannelTemplate(type="messaging", id="{{ receiver.id }}-{{ sender.id }}",
                                                    members=["moderator"]))


def test_static_parts_are_built_once_and_campaign_id_is_added():
    templates = CampaignTemplates(_campaign(text="Hi {{ receiver.name }}", custom=struct({"kind": "promo"}),
                                            attachments=[struct({"type": "image", "url": "https://x/y.png"})],
                                            poll_id="poll-1"))
    text, attachments, custom = templates.message({"sender": {"name": "S"}, "receiver": {"name": "Ann"}})
    assert (text, attachments, custom) == ("Hi Ann", [{"type": "image", "url": "https://x/y.png"}],
                                           {"kind": "promo", "campaign_id": "c1"})
    assert templates.static_custom is custom and templates.static_attachments is attachments
    assert templates.needs_receiver and not templates.needs_channel
    spec = templates.user_channel_spec("r1", {"sender": {"id": "s1"}, "receiver": {"id": "r1"}})
    assert (spec.recipient_id, spec.receiver_id, spec.type, spec.id) == ("r1", "r1", "messaging", "r1-s1")
    assert [m.user_id for m in spec.members] == ["moderator"]


def test_templated_custom_and_attachments_render_per_recipient():
    templates = CampaignTemplates(_campaign(text="x", custom=struct({"greeting": "hi {{ receiver.name }}"}),
                                            attachments=[struct({"title": "{{ sender.name }}'s news"})]))
    _, attachments, custom = templates.message({"sender": {"name": "Sam"}, "receiver": {"name": "Ann"}})
    assert attachments == [{"title": "Sam's news"}]
    assert custom == {"greeting": "hi Ann", "campaign_id": "c1"}


def test_text_over_5000_characters_fails_with_text_too_long():
    templates = CampaignTemplates(_campaign(text="{{ receiver.custom.bio }}"))
    assert templates.message({"receiver": {"custom": {"bio": "x" * 5000}}})[0] == "x" * 5000
    with pytest.raises(RecipientFailed) as caught:
        templates.message({"receiver": {"custom": {"bio": "x" * 5001}}})
    assert caught.value.reason == TEXT_TOO_LONG


def test_a_rendering_exception_fails_with_render_error():
    # The sandbox refuses huge ranges (OverflowError); a zero divisor raises too.
    templates = CampaignTemplates(_campaign(text="{{ 10 // receiver.custom.parts }}"))
    assert templates.message({"receiver": {"custom": {"parts": 5}}})[0] == "2"
    with pytest.raises(RecipientFailed) as caught:
        templates.message({"receiver": {"custom": {"parts": 0}}})
    assert caught.value.reason == RENDER_ERROR
    sandboxed = CampaignTemplates(_campaign(text="{{ range(10**9) | list | length }}"))
    with pytest.raises(RecipientFailed) as caught:
        sandboxed.message({})
    assert caught.value.reason == RENDER_ERROR


def test_one_recipient_renders_its_message_under_one_budget():
    # 60,000 iterations in the text and 60,000 in custom: each fits the budget, not both.
    loop = "{% for i in range(60000) %}{% endfor %}"
    templates = CampaignTemplates(_campaign(text=loop + "hi", custom=struct({"a": "{{ receiver.name }}" + loop})))
    with pytest.raises(RecipientFailed) as caught:
        templates.message({"receiver": {"name": "Ann"}})
    assert caught.value.reason == RENDER_ERROR
    alone = CampaignTemplates(_campaign(text=loop + "hi", custom=struct({"a": "{{ receiver.name }}"})))
    assert alone.message({"receiver": {"name": "Ann"}})[0] == "hi"  # and the next recipient gets a new budget
    assert alone.message({"receiver": {"name": "Bob"}})[2]["a"] == "Bob"


def test_rendered_custom_over_64_KiB_fails_with_render_error():
    value = "{{ receiver.custom.bio }}"
    templates = CampaignTemplates(_campaign(text="hi", custom=struct({"a": value, "b": [value]})))
    assert templates.message({"receiver": {"custom": {"bio": "x" * 32768}}})[2]["b"] == ["x" * 32768]
    with pytest.raises(RecipientFailed) as caught:
        templates.message({"receiver": {"custom": {"bio": "x" * 32769}}})
    assert caught.value.reason == RENDER_ERROR


def test_text_past_5000_characters_as_it_renders_is_text_too_long():
    templates = CampaignTemplates(_campaign(text="{% for i in range(99999) %}{{ receiver.name }}{% endfor %}"))
    with pytest.raises(RecipientFailed) as caught:
        templates.message({"receiver": {"name": "Ann"}})
    assert caught.value.reason == TEXT_TOO_LONG


@pytest.mark.parametrize("text, runs_code", [("plain", False), ("Hi {{ receiver.name }}", False),
                                             ("{{ receiver.name | upper }}", True),
                                             ("{% if receiver.name %}hi{% endif %}", True)])
def test_only_templates_running_jinja_code_render_off_the_event_loop(text, runs_code):
    assert CampaignTemplates(_campaign(text=text)).runs_code is runs_code
    assert CampaignTemplates(_campaign(text="hi", custom=struct({"a": text}))).runs_code is (text != "plain")


def test_protos_become_template_variables():
    user = directory_pb2.User(id="u1", name="Ann", teams=["t"], custom=struct({"age": 30, "tags": ["x"]}))
    assert user_to_dict(user) == {"id": "u1", "name": "Ann", "role": "", "teams": ["t"],
                                  "custom": {"age": 30, "tags": ["x"]}}
    assert struct_to_dict(struct({"a": {"b": [1.5, None, True]}})) == {"a": {"b": [1.5, None, True]}}


def test_invalid_templates_are_reported_together():
    campaign = _campaign(text="{{ oops")
    campaign.channel_template.id = "{{ stranger }}"
    with pytest.raises(InvalidArgument) as caught:
        CampaignTemplates(campaign)
    assert {v.field for v in caught.value.violations} == {"campaign.message_template.text",
                                                         "campaign.channel_template.id"}
