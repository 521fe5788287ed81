"""The contract gate of `make test`: `buf breaking` against proto/baseline.binpb passes for
today's protos, passes an addition, and fails a removed field."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUF = ROOT / "node_modules" / ".bin" / "buf"
CAMPAIGN = Path("herald") / "campaign" / "v1" / "campaign.proto"

pytestmark = pytest.mark.skipif(not BUF.exists(), reason="buf is installed by `make test` (npm)")


def _breaking(tmp_path: Path, edit=None) -> subprocess.CompletedProcess:
    shutil.copytree(ROOT / "proto", tmp_path / "proto")
    shutil.copy(ROOT / "buf.yaml", tmp_path / "buf.yaml")
    if edit is not None:
        path = tmp_path / "proto" / CAMPAIGN
        path.write_text(edit(path.read_text()))
    return subprocess.run([str(BUF), "breaking", "--against", str(ROOT / "proto" / "baseline.binpb")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)


def test_todays_protos_keep_the_baseline_contract(tmp_path):
    done = _breaking(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_an_added_field_passes(tmp_path):
    done = _breaking(tmp_path, lambda text: text.replace(
        "message Campaign {", "message Campaign {\n  // Added.\n  string added_for_the_test = 999;", 1))
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_removed_field_fails(tmp_path):
    def drop_description(text: str) -> str:
        lines = text.splitlines()
        index = next(i for i, line in enumerate(lines) if line.strip().startswith("string description ="))
        return "\n".join(lines[:index] + lines[index + 1:]) + "\n"

    done = _breaking(tmp_path, drop_description)
    assert done.returncode != 0
    assert "description" in done.stdout + done.stderr
