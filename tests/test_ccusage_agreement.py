"""cclens and ccusage (pinned 20.0.24, installed by .ci/install-deps) agree on a generated corpus.

Deliberate difference (documented in docs/sources/transcripts.md): requests above the long-context
threshold are priced request-level by cclens, tiered by ccusage; this corpus stays below it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cclens.synth.transcripts import generate

CCUSAGE = Path(__file__).resolve().parents[1] / ".tools" / "node_modules" / ".bin" / "ccusage"


@pytest.fixture
def ccusage() -> Path:
    if not CCUSAGE.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CCUSAGE} missing: .ci/install-deps should have installed ccusage@20.0.24")
        pytest.skip("ccusage not installed (run .ci/install-deps)")
    return CCUSAGE


def test_daily_tokens_equal_and_cost_within_half_a_percent(tmp_path, ccusage):
    config = tmp_path / "claude"
    truth = generate(config / "projects", target_bytes=3_000_000, seed=42, days=12)
    assert truth.junk_lines > 0  # the corpus really has junk lines
    env = {**os.environ, "CLAUDE_CONFIG_DIR": str(config), "HOME": str(tmp_path / "home")}
    cc = subprocess.run([str(ccusage), "daily", "--json", "--offline", "-z", "UTC"], capture_output=True,
                        text=True, env=env, timeout=300)
    assert cc.returncode == 0, cc.stderr
    theirs = {d["period"]: d for d in json.loads(cc.stdout)["daily"]}
    db = tmp_path / "w.duckdb"
    base = [sys.executable, "-m", "cclens.cli", "--db", str(db)]
    ing = subprocess.run([*base, "ingest", "transcripts", str(config / "projects"), "-q"], capture_output=True,
                         text=True, timeout=300)
    assert ing.returncode == 0, ing.stderr
    rep = subprocess.run([*base, "report", "daily", "--tz", "UTC", "-f", "json"], capture_output=True, text=True,
                         timeout=300)
    ours = {d["date"]: d for d in json.loads(rep.stdout)}
    assert sorted(ours) == sorted(theirs) and len(ours) > 3
    for day, t in theirs.items():
        o = ours[day]
        assert (o["input_tokens"], o["output_tokens"], o["cache_creation_tokens"], o["cache_read_tokens"]) == \
            (t["inputTokens"], t["outputTokens"], t["cacheCreationTokens"], t["cacheReadTokens"]), day
        assert o["unpriced_models"] == []
        assert o["cost_usd"] == pytest.approx(t["totalCost"], rel=0.005), day
        per_model = {m["modelName"]: m for m in t["modelBreakdowns"]}
        for m in o["models"]:
            assert m["output_tokens"] == per_model[m["model"]]["outputTokens"]
