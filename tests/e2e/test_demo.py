"""`mmm demo` on a fresh temporary workspace: every stage shows, and it ends well."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.e2e.conftest import MMM, Workspace


def test_demo_walks_through_every_stage(tmp_path: Path) -> None:
    ws = Workspace(home=tmp_path / "unused", models=tmp_path)
    env = ws.env("demo-user")
    env["TMPDIR"] = str(tmp_path)  # the demo's fresh workspace lands here
    proc = subprocess.run([str(MMM), "demo"], env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    for stage in ["validate", "run_checks", "merge_change", "copy_artifact", "create_variant",
                  "start_shadow", "collect", "analyze", "approved by bob", "drain_old",
                  "scan_usage", "purge_trash"]:  # fmt: skip
        assert stage in out, stage
    assert "PASS  shadow analysis of 800 pairs" in out
    assert re.search(r"refused: alice cannot approve", out)
    assert out.count("=>    succeeded") == 3  # v1, v2 (after approval), the retirement
    home = Path(re.search(r"^  workspace\s+(\S+)$", out, re.M).group(1))  # type: ignore[union-attr]
    assert (home / "state.db").is_file() and home.is_relative_to(tmp_path)
