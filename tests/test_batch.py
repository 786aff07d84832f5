"""``autous batch``: summary.csv, a failing case, resumption after an interrupted run, worker processes."""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from agent_fixtures import index_dir, make_case, tiny_checkpoint

from agent.batch import run_batch
from agent.cli import main
from agent.report import read_report

REPO = Path(__file__).resolve().parents[1]


def _summary(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "summary.csv", newline="") as fh:
        return {row["case"]: row for row in csv.DictReader(fh)}


def _cases(root: Path, good: int, broken: bool = True) -> Path:
    for i in range(good):
        make_case(root / f"case{i}", clip="mp4" if i % 2 == 0 else "gif")
    if broken:
        make_case(root / "no_clip", clip=None)  # fails before the graph: no report
        make_case(root / "bad_clip", clip="broken")  # the graph records the failure in its report
    (root / "not_a_case").mkdir(parents=True)  # ignored: no case.yaml
    return root


def _args(cases: Path, out: Path, *extra: str) -> list[str]:
    return ["batch", str(cases), "--out", str(out), "--checkpoint", str(tiny_checkpoint()),
            "--index-dir", str(index_dir()), *extra]


def test_batch_records_failures_goes_on_and_resumes(tmp_path: Path, capsys) -> None:
    cases, out = _cases(tmp_path / "cases", good=2), tmp_path / "out"
    assert main(_args(cases, out)) == 1
    rows = _summary(out)
    assert set(rows) == {"case0", "case1", "no_clip", "bad_clip"}
    assert rows["case0"]["status"] == rows["case1"]["status"] == "ok"
    assert rows["case0"]["label"] in ("covid19", "bacterial_pneumonia", "normal") and float(rows["case0"]["confidence"]) > 0
    assert rows["no_clip"]["status"] == "failed" and "no clip found" in rows["no_clip"]["error"]
    assert rows["bad_clip"]["status"] == "failed" and "classify" in rows["bad_clip"]["error"]
    assert (out / "case0" / "report.html").is_file() and not (out / "no_clip" / "report.json").exists()
    assert "2 ok, 2 failed" in capsys.readouterr().err

    stamp = read_report(out / "case0" / "report.json").generated_at
    seen: list[tuple[str, bool]] = []
    rows = run_batch(cases, out, checkpoint=tiny_checkpoint(), index_dir=index_dir(),
                     on_result=lambda row, skipped: seen.append((row.case, skipped)))
    assert dict(seen) == {"case0": True, "case1": True, "bad_clip": True, "no_clip": False}
    assert read_report(out / "case0" / "report.json").generated_at == stamp
    assert rows["no_clip"].status == "failed"


def test_interrupted_batch_loses_nothing_and_reruns_only_the_rest(tmp_path: Path) -> None:
    cases, out = _cases(tmp_path / "cases", good=5, broken=False), tmp_path / "out"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "agent", *_args(cases, out)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while not list(out.glob("*/report.json")):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no report within 300 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
        proc.stderr.close()
    done_before = {p.parent.name: read_report(p).generated_at for p in out.glob("*/report.json")}
    assert 1 <= len(done_before) < 5
    assert set(_summary(out)) <= {f"case{i}" for i in range(5)}  # never a torn summary.csv

    seen: list[tuple[str, bool]] = []
    rows = run_batch(cases, out, checkpoint=tiny_checkpoint(), index_dir=index_dir(),
                     on_result=lambda row, skipped: seen.append((row.case, skipped)))
    skipped = {name for name, was_skipped in seen if was_skipped}
    assert skipped == set(done_before)
    assert all(read_report(out / n / "report.json").generated_at == t for n, t in done_before.items())
    assert {r.status for r in rows.values()} == {"ok"} and len(rows) == 5
    assert len(_summary(out)) == 5


def test_two_worker_processes(tmp_path: Path) -> None:
    cases, out = _cases(tmp_path / "cases", good=2, broken=False), tmp_path / "out"
    rows = run_batch(cases, out, workers=2, checkpoint=tiny_checkpoint(), index_dir=index_dir())
    assert {r.status for r in rows.values()} == {"ok"} and set(rows) == {"case0", "case1"}
    assert read_report(out / "case1" / "report.json").key_frames


def test_bad_llm_spec_is_one_clear_error(tmp_path: Path, capsys) -> None:
    cases = _cases(tmp_path / "cases", good=1, broken=False)
    assert main(_args(cases, tmp_path / "out", "--llm", "nonsense:x")) == 2
    err = capsys.readouterr().err
    assert "unknown LLM backend" in err and "Traceback" not in err


def test_batch_input_errors(tmp_path: Path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["batch", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    assert "no case folders" in capsys.readouterr().err
    assert main(["batch", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    make_case(tmp_path / "cases" / "a")
    assert main(["batch", str(tmp_path / "cases"), "--out", str(tmp_path / "o"), "--workers", "0"]) == 2
    assert "--workers" in capsys.readouterr().err
