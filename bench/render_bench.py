"""The cost of rendering under the template budget: CPU seconds to render typical message templates
for 60,000 recipients (best of five runs), and of the costliest render the budget allows.

    .venv/bin/python -m bench.render_bench
"""

from __future__ import annotations

import time
from typing import Any

from herald.campaign.v1 import campaign_pb2
from herald.common.v1 import common_pb2
from services.delivery_svc.render import CampaignTemplates
from services.kit.templates import user_variables

RECIPIENTS = 60_000
RUNS = 5
TYPICAL = {
    "look-ups only (fast path)": "Hi {{ receiver.name }}, {{ sender.name }} has news for {{ receiver.custom.city }}",
    "look-ups and an if": "Hi {{ receiver.name }}{% if receiver.custom.vip %}, our VIP{% endif %}! "
                          "{{ sender.name }} says hello",
    "a filter": "Hi {{ receiver.name | title }}, {{ sender.name }} has news",
}
# About 96,000 of the 100,000 operations (tests/flows/test_hostile_templates.py uses the same).
COSTLIEST_ALLOWED = ("{% set x = range(1000) | list %}{% for i in range(170) %}{% set y = x | sort %}{% endfor %}"
                     "Hi {{ receiver.name }}")


def _templates(text: str) -> CampaignTemplates:
    return CampaignTemplates(campaign_pb2.Campaign(id="c", sender_id="s",
                                                   message_template=common_pb2.MessageTemplate(text=text)))


def _contexts(count: int) -> list[dict[str, Any]]:
    sender = user_variables({"id": "s", "name": "Sam", "custom": {}})
    return [{"sender": sender, "receiver": user_variables({
        "id": f"u{i}", "name": f"user {i}", "role": "user", "teams": [], "custom": {"city": "Paris", "vip": i % 2 == 0}})}
        for i in range(count)]


def _cpu_seconds(templates: CampaignTemplates, contexts: list[dict[str, Any]]) -> float:
    start = time.process_time()
    for context in contexts:
        templates.message(context)
    return time.process_time() - start


def main() -> None:
    contexts = _contexts(RECIPIENTS)
    for name, text in TYPICAL.items():
        templates = _templates(text)
        best = min(_cpu_seconds(templates, contexts) for _ in range(RUNS))
        print(f"{name:28s} {best:.3f} s CPU per {RECIPIENTS:,} messages ({best / RECIPIENTS * 1e6:.1f} µs each)")
    costliest = min(_cpu_seconds(_templates(COSTLIEST_ALLOWED), contexts[:1]) for _ in range(RUNS))
    print(f"{'the costliest allowed':28s} {costliest:.3f} s CPU for one message")


if __name__ == "__main__":
    main()
