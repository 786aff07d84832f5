"""``autous index build|rebuild|add|stats`` through the root CLI."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from agent.cli import main
from guideline_fixtures import index_dir  # noqa: F401 (shared fixture)
from knowledge.index import GuidelineIndex


@pytest.fixture()
def own_index(index_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the shared index that a test may change."""
    return Path(shutil.copytree(index_dir, tmp_path / "index", ignore=shutil.ignore_patterns(".lock")))


def test_build_is_incremental_and_stats_reports_coverage(index_dir: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["index", "build", "--index-dir", str(index_dir)]) == 0
    assert "0 chunks embedded" in capsys.readouterr().out
    assert main(["index", "stats", "--json", "--index-dir", str(index_dir)]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["documents"] >= 10 and stats["chunks"] >= 60 and stats["embedding_model"] == "all-MiniLM-L6-v2"
    assert set(stats["per_organ"]) == {"breast", "gallbladder", "lung"} and stats["per_class"]["covid19"] >= 1
    assert main(["index", "stats", "--index-dir", str(index_dir)]) == 0
    assert "documents per organ" in capsys.readouterr().out


def test_add_user_guidelines_then_reject_bad_ones(own_index: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    note = tmp_path / "ward_protocol.txt"
    note.write_text("Patients with a LUS score above 18 are reviewed by the ICU outreach team.\n")
    assert main(["index", "add", str(note), "--index-dir", str(own_index)]) == 0
    assert "user-ward-protocol" in capsys.readouterr().out
    assert (own_index / "user" / "ward_protocol.txt").is_file()

    empty = tmp_path / "empty.md"
    empty.write_text("")
    assert main(["index", "add", str(note), str(empty), "--index-dir", str(own_index)]) == 2
    err = capsys.readouterr().err
    assert err == f"autous: error: {empty}: empty file\n"
    stats = GuidelineIndex(own_index).stats()
    assert stats["user_documents"] == ["user-ward-protocol"]


def test_rebuild_keeps_user_documents(own_index: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    note = tmp_path / "local.md"
    note.write_text("---\ntitle: Local breast pathway\norgans: [breast]\n---\n## Biopsy\nBI-RADS 4 lesions are "
                    "biopsied within 7 days.\n")
    assert main(["index", "add", str(note), "--index-dir", str(own_index)]) == 0
    assert main(["index", "rebuild", "--index-dir", str(own_index)]) == 0
    assert "user-local" in capsys.readouterr().out
    hits = GuidelineIndex(own_index).search("biopsy within 7 days", k=3, organ="breast")
    assert hits[0]["id"] == "user-local#biopsy" and hits[0]["source"] == "user-provided: local.md"
