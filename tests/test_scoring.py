"""Report scoring: METEOR (with and without WordNet), the Final Score formula, missing files."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from benchmarks import scoring
from benchmarks.scoring import NoSynonyms, final_score, meteor, score_reports

HAS_WORDNET = scoring.load_wordnet()[1] == "exact+stem+wordnet"


@pytest.mark.skipif(not HAS_WORDNET, reason="WordNet not installed (make wordnet)")
def test_meteor_uses_wordnet_synonyms():
    value = meteor("the car is fast", "the auto is fast")
    assert value == pytest.approx(0.99, abs=0.01)


def test_meteor_without_wordnet_is_exact_and_stem_only():
    value = meteor("the car is fast", "the auto is fast", wordnet=NoSynonyms())
    assert value == pytest.approx(0.639, abs=0.01)
    # stems still match: "lines" vs "line"
    assert meteor("b line seen", "b lines seen", wordnet=NoSynonyms()) > 0.9
    assert meteor("pleural effusion", "normal heart", wordnet=NoSynonyms()) == 0.0


def test_final_score_formula():
    assert final_score(5, 5, 1.0) == pytest.approx(5.0)
    assert final_score(0, 0, 0.0) == 0.0
    assert final_score(3, 4, 0.5) == pytest.approx(0.2 * 3 + 0.6 * 4 + 0.2 * 5 * 0.5)


def _report(folder: Path, diagnosis: str, why: str, follow: str) -> None:
    folder.mkdir(parents=True)
    (folder / "report.json").write_text(json.dumps({
        "case_id": folder.name,
        "preliminary_diagnosis": [{"diagnosis": diagnosis, "likelihood": "high", "reasoning": "", "citations": ["P1"]}],
        "justification": why,
        "recommended_follow_up": [{"examination": follow, "reason": "", "citations": ["P2"]}],
        "classification": {"label": "ignored text outside the sections"},
    }))


def test_score_reports_end_to_end_with_missing_items(tmp_path: Path):
    reports = tmp_path / "reports"
    _report(reports / "a", "COVID-19 pneumonia", "B-lines and pleural irregularities", "RT-PCR test")
    (reports / "b").mkdir(parents=True)
    (reports / "b" / "report.md").write_text(
        "# Report\n## Preliminary diagnosis\nBacterial pneumonia\n## Justification\nconsolidation with "
        "air bronchograms\n## Recommended follow-up\nchest x-ray\n## Disclaimer\nnot a diagnosis\n")
    (reports / "c").mkdir(parents=True)  # no report file
    refs = tmp_path / "refs.csv"
    refs.write_text("case_id,reference\n"
                    "a,COVID-19 pneumonia with B-lines and pleural irregularities; RT-PCR test\n"
                    "b,Bacterial pneumonia: consolidation with air bronchograms; chest x-ray\n"
                    "c,Normal lung\n"
                    "d,reference without a report\n")
    ratings = tmp_path / "ratings.csv"
    ratings.write_text("case_id,s_amateur,s_expert\na,4,3\nb,5,4.5\n")
    scores, mode = score_reports(reports, refs, ratings, wordnet=NoSynonyms())
    by_id = {s.case_id: s for s in scores}
    assert mode == "exact+stem"
    assert set(by_id) == {"a", "b", "c", "d"}
    assert by_id["a"].status == "ok" and by_id["a"].meteor > 0.85
    assert by_id["b"].status == "ok" and by_id["b"].meteor > 0.9  # disclaimer section is not scored
    assert by_id["a"].final_score == pytest.approx(final_score(4, 3, by_id["a"].meteor))
    assert "no report.json or report.md" in by_id["c"].status and by_id["c"].meteor is None
    assert by_id["d"].status == "no report folder"
    out = tmp_path / "scores.csv"
    scoring.write_csv(scores, out)
    rows = list(csv.DictReader(out.open()))
    assert [r["case_id"] for r in rows] == ["a", "b", "c", "d"] and rows[2]["meteor"] == ""


def test_references_from_folder_and_bad_ratings(tmp_path: Path):
    refs = tmp_path / "refs"
    refs.mkdir()
    (refs / "x.txt").write_text("the car is fast")
    assert scoring.read_references(refs) == {"x": "the car is fast"}
    bad = tmp_path / "ratings.csv"
    bad.write_text("case_id,s_amateur,s_expert\nx,7,1\n")
    with pytest.raises(scoring.ScoringError, match=r"ratings.csv: line 2"):
        scoring.read_ratings(bad)
    with pytest.raises(scoring.ScoringError, match="reports folder not found"):
        score_reports(tmp_path / "nope", refs)


def test_cli_score_reports(tmp_path: Path, capsys):
    from agent.cli import main

    _report(tmp_path / "r" / "x", "the auto is fast", "", "")
    (tmp_path / "refs").mkdir()
    (tmp_path / "refs" / "x.txt").write_text("the car is fast")
    out = tmp_path / "s.csv"
    assert main(["score-reports", "--reports", str(tmp_path / "r"), "--references",
                 str(tmp_path / "refs"), "--out", str(out)]) == 0
    assert "Report scores" in capsys.readouterr().out
    assert float(next(csv.DictReader(out.open()))["meteor"]) > 0.6
    assert main(["score-reports", "--reports", str(tmp_path / "none"), "--references", str(out)]) == 2


def test_table_prints_case_ids_and_statuses_literally(tmp_path: Path, capsys):
    scores = [scoring.CaseScore("[c1]", "[/b] gone"), scoring.CaseScore("y", "ok", meteor=0.5)]
    scoring.print_table(scores, "exact+stem")
    out = capsys.readouterr().out
    assert "[c1]" in out and "[/b] gone" in out


def test_unreadable_reference_is_one_line_error(tmp_path: Path):
    (tmp_path / "refs" / "x.txt").mkdir(parents=True)  # a folder where a reference text should be
    with pytest.raises(scoring.ScoringError, match=r"x.txt: cannot read"):
        scoring.read_references(tmp_path / "refs")
