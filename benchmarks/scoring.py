"""Report scoring: METEOR against reference clinical text and the paper's Final Score.

Final Score = 0.2·S_amateur + 0.6·S_expert + 0.2·5·METEOR (ratings on a 0–5 scale,
METEOR in [0, 1] scaled to 0–5). METEOR is nltk's ``meteor_score`` on tokenised text;
it uses WordNet synonyms when WordNet is installed (``make wordnet``) and otherwise
falls back to exact+stem matching, which the result says.
"""
from __future__ import annotations

import csv
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from models.errors import UserError

REPO = Path(__file__).resolve().parents[1]
SECTIONS = ("preliminary_diagnosis", "justification", "recommended_follow_up")
_MD_HEADINGS = {
    "preliminary_diagnosis": re.compile(r"preliminary\s+diagnos", re.I),
    "justification": re.compile(r"justification", re.I),
    "recommended_follow_up": re.compile(r"(recommended\s+)?follow[\s-]*up", re.I),
}
_TOKEN = re.compile(r"[A-Za-z0-9]+(?:[-'][A-Za-z0-9]+)*")
CSV_FIELDS = ("case_id", "status", "meteor", "s_amateur", "s_expert", "final_score", "matching")


class ScoringError(UserError):
    """A reports folder, references or ratings file that cannot be used."""


class NoSynonyms:
    """Stand-in for WordNet in nltk's METEOR: no synonyms, so exact+stem matching only."""

    def synsets(self, *args: Any, **kwargs: Any) -> list:
        return []


@dataclass
class CaseScore:
    """One case's scores; ``status`` is "ok" or why it could not be scored."""

    case_id: str
    status: str
    meteor: float | None = None
    s_amateur: float | None = None
    s_expert: float | None = None
    final_score: float | None = None
    matching: str = ""


def load_wordnet() -> tuple[Any, str]:
    """nltk's WordNet reader and "exact+stem+wordnet", or a no-synonym stand-in and "exact+stem"."""
    import nltk

    local = REPO / ".cache" / "nltk_data"
    if local.is_dir() and str(local) not in nltk.data.path:
        nltk.data.path.append(str(local))
    try:
        from nltk.corpus import wordnet

        wordnet.ensure_loaded()
        wordnet.synsets("car")
        return wordnet, "exact+stem+wordnet"
    except (LookupError, OSError):
        return NoSynonyms(), "exact+stem"


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens (letters/digits, inner hyphens and apostrophes kept)."""
    return [t.lower() for t in _TOKEN.findall(text)]


def meteor(reference: str, hypothesis: str, wordnet: Any | None = None) -> float:
    """METEOR of one hypothesis against one reference text (nltk, tokenised)."""
    from nltk.translate.meteor_score import meteor_score

    if wordnet is None:
        wordnet, _ = load_wordnet()
    return float(meteor_score([tokenize(reference)], tokenize(hypothesis), wordnet=wordnet))


def final_score(s_amateur: float, s_expert: float, meteor_value: float) -> float:
    """The paper's Final Score on a 0–5 scale: 0.2·S_amateur + 0.6·S_expert + 0.2·5·METEOR."""
    return 0.2 * s_amateur + 0.6 * s_expert + 0.2 * 5.0 * meteor_value


def _flatten(value: Any) -> list[str]:
    """Every string in a JSON value, in order; citation ids, numbers and booleans are not report text."""
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, dict):
        return [s for k, v in value.items() if k != "citations" for s in _flatten(v)]
    if isinstance(value, list):
        return [s for v in value for s in _flatten(v)]
    return []


def report_text_from_json(data: dict, path: Path) -> str:
    """The three report sections of a parsed report.json flattened to one text."""
    holder = data
    if not any(k in data for k in SECTIONS):
        nested = [v for v in data.values() if isinstance(v, dict) and any(k in v for k in SECTIONS)]
        if not nested:
            raise ScoringError(f"{path}: none of {', '.join(SECTIONS)} found")
        holder = nested[0]
    return "\n".join(s for key in SECTIONS for s in _flatten(holder.get(key)))


def report_text_from_markdown(text: str) -> str:
    """The three report sections of a report.md; the whole text when it has none of their headings."""
    chunks: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        heading = re.match(r"^\s*#{1,6}\s+(.*)$", line)
        if heading:
            current = next((k for k, rx in _MD_HEADINGS.items() if rx.search(heading.group(1))), None)
            continue
        if current is not None:
            chunks.setdefault(current, []).append(line)
    body = "\n".join("\n".join(chunks[k]) for k in SECTIONS if k in chunks) if chunks else text
    return re.sub(r"[*_`>#|\[\]]", " ", body)


def read_report(case_dir: Path) -> str:
    """Report text of one case folder (report.json preferred, else report.md)."""
    js, md = case_dir / "report.json", case_dir / "report.md"
    if js.is_file():
        try:
            data = json.loads(js.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ScoringError(f"{js}: not valid JSON ({exc})") from None
        except OSError as exc:
            raise ScoringError(f"{js}: cannot read ({exc.strerror or exc})") from None
        if not isinstance(data, dict):
            raise ScoringError(f"{js}: expected a JSON object")
        text = report_text_from_json(data, js)
    elif md.is_file():
        try:
            text = report_text_from_markdown(md.read_text(encoding="utf-8", errors="replace"))
        except OSError as exc:
            raise ScoringError(f"{md}: cannot read ({exc.strerror or exc})") from None
    else:
        raise ScoringError(f"{case_dir}: no report.json or report.md")
    if not tokenize(text):
        raise ScoringError(f"{case_dir}: report has no text in its sections")
    return text


def _read_csv(path: Path, required: tuple[str, ...]) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in required if c not in (reader.fieldnames or [])]
            if missing:
                raise ScoringError(f"{path}: missing column(s) {', '.join(missing)}")
            return list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ScoringError(f"{path}: cannot read CSV ({exc})") from None


def read_references(source: Path) -> dict[str, str]:
    """Reference texts by case id, from a CSV ``case_id,reference`` or a folder of ``<case_id>.txt``."""
    if source.is_dir():
        refs = {}
        for p in sorted(source.glob("*.txt")):
            try:
                refs[p.stem] = p.read_text(encoding="utf-8", errors="replace")
            except OSError as exc:
                raise ScoringError(f"{p}: cannot read ({exc.strerror or exc})") from None
        return refs
    if source.is_file():
        return {r["case_id"].strip(): r["reference"] or "" for r in _read_csv(source, ("case_id", "reference"))}
    raise ScoringError(f"{source}: references not found (a CSV or a folder of <case_id>.txt)")


def read_ratings(path: Path) -> dict[str, tuple[float, float]]:
    """Amateur and expert ratings (0–5) by case id from ``case_id,s_amateur,s_expert``."""
    if not path.is_file():
        raise ScoringError(f"{path}: ratings file not found")
    ratings: dict[str, tuple[float, float]] = {}
    for n, row in enumerate(_read_csv(path, ("case_id", "s_amateur", "s_expert")), start=2):
        try:
            a, e = float(row["s_amateur"]), float(row["s_expert"])
        except (TypeError, ValueError):
            raise ScoringError(f"{path}: line {n}: ratings must be numbers") from None
        if not (0 <= a <= 5 and 0 <= e <= 5):
            raise ScoringError(f"{path}: line {n}: ratings must lie in 0..5")
        ratings[row["case_id"].strip()] = (a, e)
    return ratings


def score_reports(
    reports_dir: Path, references: Path, ratings: Path | None = None, wordnet: Any | None = None
) -> tuple[list[CaseScore], str]:
    """Score every case that has a report folder or a reference; returns scores and the matching mode."""
    if not reports_dir.is_dir():
        raise ScoringError(f"{reports_dir}: reports folder not found")
    refs = read_references(references)
    rated = read_ratings(ratings) if ratings else {}
    if wordnet is None:
        wordnet, mode = load_wordnet()
    else:
        mode = "exact+stem" if isinstance(wordnet, NoSynonyms) else "exact+stem+wordnet"
    case_dirs = {p.name: p for p in reports_dir.iterdir() if p.is_dir()}
    scores: list[CaseScore] = []
    for case_id in sorted(set(case_dirs) | set(refs)):
        row = CaseScore(case_id, "ok", matching=mode)
        if case_id in rated:
            row.s_amateur, row.s_expert = rated[case_id]
        if case_id not in refs or not tokenize(refs[case_id]):
            row.status = "no reference"
        elif case_id not in case_dirs:
            row.status = "no report folder"
        else:
            try:
                row.meteor = meteor(refs[case_id], read_report(case_dirs[case_id]), wordnet)
            except ScoringError as exc:
                row.status = str(exc)
        if row.meteor is not None and case_id in rated:
            row.final_score = final_score(row.s_amateur, row.s_expert, row.meteor)
        scores.append(row)
    return scores, mode


def summary(scores: list[CaseScore]) -> dict[str, float | int | None]:
    """Mean METEOR and Final Score over the scored cases, and counts."""
    def mean(values: list[float]) -> float | None:
        return sum(values) / len(values) if values else None

    met = [s.meteor for s in scores if s.meteor is not None]
    fin = [s.final_score for s in scores if s.final_score is not None]
    return {"cases": len(scores), "scored": len(met), "meteor_mean": mean(met), "final_score_mean": mean(fin)}


def write_csv(scores: list[CaseScore], path: Path) -> None:
    """One row a case with the columns of :data:`CSV_FIELDS`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for s in scores:
            writer.writerow({k: ("" if v is None else round(v, 4) if isinstance(v, float) else v)
                             for k, v in asdict(s).items()})


def print_table(scores: list[CaseScore], mode: str) -> None:
    """A rich table of the scores with the matching mode and means."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    def fmt(v: float | None) -> str:
        return "–" if v is None else f"{v:.3f}"

    table = Table(title=f"Report scores (METEOR matching: {mode})")
    for col in ("case", "METEOR", "S_amateur", "S_expert", "Final Score", "status"):
        table.add_column(col, justify="left" if col in ("case", "status") else "right", overflow="fold")
    for s in scores:
        table.add_row(escape(s.case_id), fmt(s.meteor), fmt(s.s_amateur), fmt(s.s_expert), fmt(s.final_score),
                      escape(s.status))
    agg = summary(scores)
    table.add_row("mean", fmt(agg["meteor_mean"]), "", "", fmt(agg["final_score_mean"]),
                  f"{agg['scored']}/{agg['cases']} scored", style="bold")
    console = Console()
    console.print(table)
    if mode == "exact+stem":
        console.print("WordNet not found (run `make wordnet`): METEOR used exact+stem matching only, "
                      "without synonyms; its values are lower than with WordNet.")


def run_cli(reports: str, references: str, ratings: str | None, out: str | None) -> int:
    """``autous score-reports``: score, print, write CSV; exit 1 when no case could be scored."""
    scores, mode = score_reports(Path(reports), Path(references), Path(ratings) if ratings else None)
    print_table(scores, mode)
    out_path = Path(out) if out else Path(reports) / "scores.csv"
    write_csv(scores, out_path)
    print(f"wrote {out_path}")
    return 0 if any(s.meteor is not None for s in scores) else 1
