"""Unit tests of composing a batch's rows: message ids are exactly uuid5's (they must not change
across versions, or a delivery resumed after an upgrade would send twice)."""

from __future__ import annotations

import random
import uuid

from services.delivery_svc.compose import MESSAGE_ID_NAMESPACE, message_id


def test_message_id_is_uuid5_of_campaign_and_target():
    rng = random.Random(8)
    alphabet = "abcXYZ019-_:.@ \x00éß中😀"
    pairs = [("c1", "u1"), ("", ""), ("c" * 255, "messaging:" + "x" * 255)] + [
        ("".join(rng.choices(alphabet, k=rng.randint(1, 40))), "".join(rng.choices(alphabet, k=rng.randint(1, 40))))
        for _ in range(2000)]
    for campaign_id, target_id in pairs:
        expected = str(uuid.uuid5(MESSAGE_ID_NAMESPACE, f"{campaign_id}\x00{target_id}"))
        assert message_id(campaign_id, target_id) == expected, (campaign_id, target_id)
