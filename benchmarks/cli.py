"""Subcommands of this package for the ``autous`` CLI (see agent/cli.py)."""
from __future__ import annotations

import argparse


def _score_reports(args: argparse.Namespace) -> int:
    from benchmarks.scoring import run_cli

    return run_cli(args.reports, args.references, args.ratings, args.out)


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add this package's subcommands to the root parser."""
    p = sub.add_parser(
        "score-reports",
        help="score generated reports against reference text (METEOR, the paper's Final Score)",
        description="METEOR between each generated report (DIR/<case>/report.json or report.md: "
        "preliminary diagnosis, justification, recommended follow-up) and its reference clinical "
        "text; with --ratings also Final Score = 0.2*S_amateur + 0.6*S_expert + 0.2*5*METEOR.",
    )
    p.add_argument("--reports", required=True, metavar="DIR", help="folder of <case_id>/report.json")
    p.add_argument("--references", required=True, metavar="CSV_OR_DIR",
                   help="CSV with case_id,reference or a folder of <case_id>.txt")
    p.add_argument("--ratings", metavar="CSV", help="CSV with case_id,s_amateur,s_expert (0-5)")
    p.add_argument("--out", metavar="CSV", help="where to write the scores (default DIR/scores.csv)")
    p.set_defaults(handler=_score_reports)
