"""Batch diagnosis: every case folder under a directory, resumable, one failure never stops the rest."""
from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from agent.case import CASE_FILE
from agent.report import Report, atomic_write, read_report
from models.errors import UserError

SUMMARY_FIELDS = ("case", "label", "confidence", "abstained", "status", "error")


@dataclass
class CaseResult:
    """One row of ``summary.csv``."""

    case: str
    label: str = ""
    confidence: str = ""
    abstained: str = ""
    status: str = "ok"
    error: str = ""

    @classmethod
    def from_report(cls, name: str, report: Report) -> "CaseResult":
        c = report.classification
        if c is None:
            errors = "; ".join(f"{e.node}: {e.message}" for e in report.errors) or "not classified"
            return cls(case=name, status="failed", error=errors)
        conf = "" if c.confidence is None else f"{c.confidence:.4f}"
        return cls(case=name, label=c.label, confidence=conf, abstained=str(c.abstained).lower())


def find_cases(cases_dir: Path) -> list[Path]:
    """Subfolders holding a case.yaml, sorted by name."""
    if not cases_dir.is_dir():
        raise UserError(f"{cases_dir}: not a folder of case folders")
    cases = sorted(p for p in cases_dir.iterdir() if p.is_dir() and (p / CASE_FILE).is_file())
    if not cases:
        raise UserError(f"{cases_dir}: no case folders (subfolders with {CASE_FILE})")
    return cases


def finished_report(out_dir: Path) -> Report | None:
    """The case's report when a complete, valid report.json exists (so the case can be skipped)."""
    try:
        return read_report(out_dir / "report.json")
    except (OSError, ValueError):
        return None


def write_summary(path: Path, rows: dict[str, CaseResult]) -> None:
    """Rewrite summary.csv atomically, rows sorted by case name."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=SUMMARY_FIELDS, lineterminator="\n")
    writer.writeheader()
    for name in sorted(rows):
        writer.writerow(asdict(rows[name]))
    atomic_write(path, buf.getvalue())


_GRAPH: Any = None
_INIT_ERROR = ""


def _build(llm: str | None, checkpoint: str | None, index_dir: str | None) -> None:
    """Build this process's graph once: the model and the index then serve every case.

    One torch thread per worker (use ``--workers`` for more cores): on a shared 2-core machine this
    made a batch twice as fast, mostly in the query embeddings, which gain nothing from threads.
    """
    global _GRAPH
    import torch

    from agent.graph import build_graph
    from tools import get_tools

    torch.set_num_threads(1)
    _GRAPH = build_graph(get_tools(checkpoint=checkpoint, index_dir=index_dir), backend=llm)


def _pool_init(llm: str | None, checkpoint: str | None, index_dir: str | None) -> None:
    """Worker-process initializer: builds the graph; a failure is reported per case, not as a broken pool."""
    global _INIT_ERROR
    try:
        _build(llm, checkpoint, index_dir)
    except Exception as exc:  # e.g. a bad --llm spec: every case gets this message instead of a broken pool
        _INIT_ERROR = str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"


def _run_one(case_dir: str, out_dir: str) -> tuple[str, dict[str, Any] | None, str]:
    """Diagnose one case in the worker; returns (name, report json or None, error)."""
    from agent.graph import diagnose_case

    name = Path(case_dir).name
    if _INIT_ERROR:
        return name, None, _INIT_ERROR
    try:
        report = diagnose_case(case_dir, out_dir, graph=_GRAPH)
    except UserError as exc:
        return name, None, str(exc)
    except Exception as exc:  # one bad case never stops the batch
        return name, None, f"{case_dir}: {type(exc).__name__}: {exc}"
    return name, report.model_dump(mode="json"), ""


def run_batch(cases_dir: str | Path, out_dir: str | Path, workers: int = 1, llm: str | None = None,
              checkpoint: str | Path | None = None, index_dir: str | Path | None = None,
              on_result: Callable[[CaseResult, bool], None] | None = None) -> dict[str, CaseResult]:
    """Diagnose every case folder into ``out_dir/<case>/``; ``summary.csv`` is rewritten as each case ends.

    Cases with a complete report.json are skipped (``on_result(row, skipped=True)``).
    """
    cases_dir, out_dir = Path(cases_dir), Path(out_dir)
    cases = find_cases(cases_dir)
    summary = out_dir / "summary.csv"
    rows: dict[str, CaseResult] = {}
    todo = []
    for case in cases:
        done = finished_report(out_dir / case.name)
        if done is not None:
            rows[case.name] = CaseResult.from_report(case.name, done)
            if on_result:
                on_result(rows[case.name], True)
        else:
            todo.append(case)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_summary(summary, rows)
    args = (llm, None if checkpoint is None else str(checkpoint), None if index_dir is None else str(index_dir))
    for name, report, error in _results(todo, out_dir, max(1, workers), args):
        rows[name] = (CaseResult.from_report(name, Report.model_validate(report)) if report is not None
                      else CaseResult(case=name, status="failed", error=error))
        write_summary(summary, rows)
        if on_result:
            on_result(rows[name], False)
    return rows


def _results(todo: list[Path], out_dir: Path, workers: int,
             init_args: tuple[Any, ...]) -> Iterator[tuple[str, dict[str, Any] | None, str]]:
    """Run cases in this process (one worker) or a pool of spawned processes; yield as they finish."""
    if not todo:
        return
    if workers == 1:
        _build(*init_args)
        for case in todo:
            yield _run_one(str(case), str(out_dir / case.name))
        return
    ctx = get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=ctx,
                             initializer=_pool_init, initargs=init_args) as pool:
        futures = [pool.submit(_run_one, str(c), str(out_dir / c.name)) for c in todo]
        for fut in as_completed(futures):
            yield fut.result()
