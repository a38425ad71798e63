"""`make demo` end to end in its quick form (slow: run by `make test-slow`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_tool


@pytest.mark.slow
def test_quick_demo_trains_evaluates_and_exports(tmp_path: Path) -> None:
    out = run_tool(
        "tools/demo.py", "--quick", "--data", tmp_path / "data", "--out", tmp_path / "work"
    )
    table = (tmp_path / "work" / "demo_results.md").read_text()
    for row in ("teacher", "student alone", "student distilled", "exported student"):
        assert f"| {row}" in table
    assert "COCO mAP" in out
