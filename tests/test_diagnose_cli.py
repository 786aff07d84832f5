"""``autous diagnose``: the summary, --json, default output folder, exit statuses and clear errors."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from agent_fixtures import index_dir, make_case, tiny_checkpoint

from agent.cli import main

REPO = Path(__file__).resolve().parents[1]


def _args(case: Path, *extra: str) -> list[str]:
    return ["diagnose", str(case), "--checkpoint", str(tiny_checkpoint()), "--index-dir", str(index_dir()), *extra]


def test_summary_and_default_out_folder(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    case = make_case(tmp_path / "cases" / "covid_like", id="patient-42")
    assert main(_args(case)) == 0
    out = capsys.readouterr().out
    report = json.loads((tmp_path / "runs" / "patient-42" / "report.json").read_text())
    assert report["classification"]["label_name"] in out and "Preliminary diagnosis" in out
    assert report["preliminary_diagnosis"][0]["diagnosis"][:20] in out
    assert "Recommended follow-up" in out and "no-LLM rules" in out
    assert str(Path("runs") / "patient-42" / "report.html") in out


def test_json_output_is_the_report(tmp_path: Path, capsys) -> None:
    out_dir = tmp_path / "out"
    assert main(_args(make_case(tmp_path / "c", clip="png"), "--out", str(out_dir), "--json")) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((out_dir / "report.json").read_text())
    assert printed["classification"]["source"] == "model" and printed["backend"]["backend"] == "none"


def test_user_classification_case_runs_without_clip(tmp_path: Path, capsys) -> None:
    case = make_case(tmp_path / "c", clip=None, classification="breast_malignant",
                     chief_complaint="Painless lump in the left breast.", physical_exam="Hard, fixed 2 cm mass.")
    assert main(_args(case, "--out", str(tmp_path / "out"))) == 0
    out = capsys.readouterr().out
    assert "Malignant breast lesion" in out and "given by the user" in out and "biopsy" in out


def test_undecodable_clip_exits_1_with_a_report(tmp_path: Path, capsys) -> None:
    assert main(_args(make_case(tmp_path / "c", clip="broken"), "--out", str(tmp_path / "out"))) == 1
    captured = capsys.readouterr()
    assert "could not be classified" in captured.out and "clip.mp4" in captured.out
    assert (tmp_path / "out" / "report.json").is_file() and "Traceback" not in captured.err


@pytest.mark.parametrize("make, words", [
    (lambda p: make_case(p, clip=None), "no clip found"),
    (lambda p: make_case(p, mood="anxious"), "unknown key 'mood'"),
])
def test_bad_case_is_one_line_exit_2(tmp_path: Path, capsys, make, words: str) -> None:
    assert main(["diagnose", str(make(tmp_path / "c"))]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("autous: error: ") and words in err and "\n" not in err


def test_cli_module_imports_nothing_heavy() -> None:
    code = ("import argparse, sys, agent.commands; agent.commands.register(argparse.ArgumentParser().add_subparsers()); "
            "print(sorted(m for m in ('torch', 'langgraph', 'chromadb', 'langchain_core') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_python_api_in_three_lines(tmp_path: Path) -> None:
    from agent import diagnose_case

    report = diagnose_case(make_case(tmp_path / "c"), tmp_path / "x", checkpoint=tiny_checkpoint(), index_dir=index_dir())
    assert report.preliminary_diagnosis[0].diagnosis and (tmp_path / "x" / "report.md").is_file()


def test_summary_prints_report_text_literally(tmp_path: Path, capsys) -> None:
    from agent.commands import _summary
    from agent.report import Differential, FollowUp, NodeError, Report

    report = Report(case_id="c", classification=None, key_frames=[], evidence=[], citations=[],
                    preliminary_diagnosis=[Differential(diagnosis="Pneumonia [lung-covid19#2]", likelihood="low",
                                                        reasoning="r", citations=[])],
                    justification="j", backend={"backend": "openai", "model": "m", "written_by": "llm"},
                    recommended_follow_up=[FollowUp(examination="CT [/b] scan", reason="r", citations=[])],
                    errors=[NodeError(node="classify", message="[/red] clip [x].mp4: unreadable")])
    _summary(report, tmp_path / "[out]")
    out = capsys.readouterr().out
    assert "[lung-covid19#2]" in out and "CT [/b] scan" in out and "[/red] clip [x].mp4" in out
    assert str(tmp_path / "[out]" / "report.html") in out.replace("\n", "")
