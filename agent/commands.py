"""``autous diagnose`` and ``autous batch`` (handlers import the graph lazily)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

NODE_LABELS = {"intake": "case loaded", "classify": "classified", "key_frames": "key frames picked",
               "retrieve": "guidelines retrieved", "compose": "draft written", "check": "draft checked",
               "fallback": "fell back to the no-LLM rules", "done": "report written"}


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add this package's subcommands to the root parser."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--llm", default=None, metavar="SPEC",
                        help="LLM backend: none, openai[:MODEL] or local:PATH (default: the AUTOUS_LLM environment "
                             "variable, else none: a deterministic no-LLM report)")
    common.add_argument("--checkpoint", default=None, metavar="CKPT", help="classifier checkpoint (default: bundled)")
    common.add_argument("--index-dir", default=None, metavar="DIR", help="guideline index folder (default: AUTOUS_INDEX_DIR or ~/.cache/autous/index)")

    p = sub.add_parser("diagnose", parents=[common], help="diagnose one case folder (clip + case.yaml) and write a report",
                       description="Run the Auto-US pipeline on one case folder: classify the clip, pick key frames, "
                                   "retrieve guideline passages and write report.json, report.md and report.html.")
    p.add_argument("case_dir", metavar="CASE_DIR", help="folder with case.yaml and the clip")
    p.add_argument("--out", default=None, metavar="DIR", help="report folder (default: runs/<case_id>)")
    p.add_argument("--json", action="store_true", help="print report.json instead of the summary")
    p.set_defaults(handler=diagnose_command)

    b = sub.add_parser("batch", parents=[common], help="diagnose every case folder under a directory (resumable)",
                       description="Diagnose every subfolder with a case.yaml; one report folder per case and "
                                   "summary.csv. A rerun skips cases whose report is complete. Exit 1 if any case failed.")
    b.add_argument("cases_dir", metavar="CASES_DIR", help="folder of case folders")
    b.add_argument("--out", required=True, metavar="DIR", help="output folder (one subfolder per case + summary.csv)")
    b.add_argument("--workers", type=int, default=1, metavar="N", help="worker processes (default 1)")
    b.set_defaults(handler=batch_command)


def _summary(report: Any, out: Path) -> None:
    """The report in the terminal; its text (LLM-written, case-derived, paths) is escaped, never read as markup."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    c = report.classification
    console.print(f"[bold]Auto-US report: {escape(report.case_id)}[/bold]")
    if c is None:
        console.print("[red]The clip could not be classified.[/red]")
    else:
        conf = "" if c.confidence is None else f", confidence {c.confidence:.1%}"
        src = "model" if c.source == "model" else "given by the user"
        console.print(f"Classification: [bold]{escape(c.label_name)}[/bold] ({escape(c.label)}, {src}{conf})")
        if c.abstained:
            console.print("[yellow]The classifier abstained: the result is uncertain and needs expert review.[/yellow]")
    table = Table("rank", "differential", "likelihood", title="Preliminary diagnosis", title_justify="left")
    for i, d in enumerate(report.preliminary_diagnosis, 1):
        table.add_row(str(i), escape(d.diagnosis), d.likelihood)
    console.print(table)
    console.print("Recommended follow-up:")
    for f in report.recommended_follow_up:
        console.print(f"  - {escape(f.examination)}")
    by = report.backend or {}
    console.print("Written by: " + (escape(f"LLM {by.get('backend')}:{by.get('model')}") if report.written_by_llm
                                    else "no-LLM rules (deterministic)"))
    for e in report.errors:
        console.print(f"[red]error in {e.node}:[/red] {escape(e.message)}", highlight=False)
    console.print(f"Report: {escape(str(out / 'report.html'))} (also report.md, report.json)")
    console.print(f"[dim]{escape(report.disclaimer)}[/dim]")


def diagnose_command(args: argparse.Namespace) -> int:
    """Diagnose one case; exit 1 when the clip could not be classified."""
    from rich.console import Console
    from rich.markup import escape

    from agent.case import load_case

    loaded = load_case(args.case_dir)  # a bad case fails fast, before the heavy imports
    from agent.graph import diagnose_case

    out = Path(args.out) if args.out else Path("runs") / loaded.id
    err = Console(stderr=True)
    with err.status("diagnosing…") as status:
        def progress(node: str, update: dict[str, Any]) -> None:
            status.update(f"{NODE_LABELS.get(node, node)}…")
            for e in update.get("errors") or []:
                err.print(f"[yellow]{e['node']}:[/yellow] {escape(e['message'])}", highlight=False)

        report = diagnose_case(args.case_dir, out, llm=args.llm, checkpoint=args.checkpoint,
                               index_dir=args.index_dir, on_update=progress)
    if args.json:
        print((out / "report.json").read_text(encoding="utf-8"), end="")
    else:
        _summary(report, out)
    return 1 if report.failed else 0


def batch_command(args: argparse.Namespace) -> int:
    """Diagnose every case; exit 1 when any case failed."""
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from agent.batch import find_cases, run_batch
    from models.errors import UserError

    if args.workers < 1:
        raise UserError(f"--workers: must be at least 1, got {args.workers}")
    total = len(find_cases(Path(args.cases_dir)))
    console = Console(stderr=True)
    counts = {"ok": 0, "failed": 0, "skipped": 0}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("cases", total=total)

        def on_result(row: Any, skipped: bool) -> None:
            counts["skipped" if skipped else row.status] += 1
            if row.status == "failed" and not skipped:
                progress.console.print(f"[red]failed[/red] {escape(row.case)}: {escape(row.error)}", highlight=False)
            progress.advance(task)

        rows = run_batch(args.cases_dir, args.out, workers=args.workers, llm=args.llm, checkpoint=args.checkpoint,
                  index_dir=args.index_dir, on_result=on_result)
    failed = sum(r.status == "failed" for r in rows.values())
    console.print(f"{counts['ok']} ok, {counts['failed']} failed, {counts['skipped']} skipped (already done); "
                  f"summary: {escape(str(Path(args.out) / 'summary.csv'))}")
    return 1 if failed else 0
