"""The README's "Error reasons" table and the reason constants name the same cases, so
neither can drift from the other."""

from __future__ import annotations

import re
from pathlib import Path

import grpc

from services.campaign_svc import reasons as campaign_reasons
from services.delivery_svc import reasons as delivery_reasons
from services.kit import reasons as kit_reasons
from services.segment_svc import reasons as segment_reasons

README = Path(__file__).resolve().parents[2] / "README.md"
MODULES = {"any": kit_reasons, "segment.herald": segment_reasons, "campaign.herald": campaign_reasons,
           "delivery.herald": delivery_reasons}
ROW = re.compile(r"^\| `([A-Z_]+)` \| `([A-Z_]+)` \| (any|`[a-z]+\.herald`) \| .+ \|$")


def _constants() -> set[tuple[str, str]]:
    found = set()
    for domain, module in MODULES.items():
        for name, value in vars(module).items():
            if name.isupper():
                assert value == name, f"{module.__name__}.{name} = {value!r}"
                found.add((domain, value))
    return found


def _readme_rows() -> list[tuple[str, str, str]]:
    section = README.read_text().split("\n## Error reasons\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    parsed = [ROW.match(line) for line in rows]
    assert all(parsed), [line for line, match in zip(rows, parsed) if not match]
    return [(match[3].strip("`"), match[1], match[2]) for match in parsed]


def test_the_readme_lists_every_reason_constant_and_nothing_else():
    rows = _readme_rows()
    listed = [(domain, reason) for domain, reason, _ in rows]
    assert len(listed) == len(set(listed)), "a reason is listed twice"
    assert set(listed) == _constants()
    assert all(status in grpc.StatusCode.__members__ for _, _, status in rows)
