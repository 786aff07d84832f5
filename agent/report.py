"""The diagnosis: what an LLM (or the rules) writes, and the full report written to disk.

``DiagnosisDraft`` is the structured-output schema given to an LLM: the paper's three
sections (preliminary diagnosis, justification, recommended follow-up) plus citations
of the numbered evidence passages. ``Report`` is every key of ``report.json``.
"""
from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

DISCLAIMER = (
    "Auto-US is a research assistant, not a diagnostic device. This report is a preliminary, "
    "machine-generated aid for a qualified clinician: it may be wrong, it does not replace clinical "
    "examination or expert review, and no decision should rest on it alone."
)


class Differential(BaseModel):
    """One ranked differential diagnosis (list order is the rank, most likely first)."""

    diagnosis: str = Field(description="The diagnosis, in plain clinical words.")
    likelihood: Literal["high", "moderate", "low"] = Field(
        description="How well the evidence supports it; never 'high' when the classifier abstained."
    )
    reasoning: str = Field(description="Why: model result, clinical findings and guideline criteria.")
    citations: list[str] = Field(description="Ids of the evidence passages this reasoning rests on.")


class FollowUp(BaseModel):
    """One recommended follow-up examination or step."""

    examination: str = Field(description="The examination, test or step.")
    reason: str = Field(description="What it would confirm or exclude.")
    citations: list[str] = Field(description="Ids of the evidence passages that recommend it.")


class DiagnosisDraft(BaseModel):
    """The three sections of the diagnosis, as an LLM (or the no-LLM rules) writes them."""

    preliminary_diagnosis: list[Differential] = Field(
        description="Ranked differential diagnoses, most likely first (at least one)."
    )
    justification: str = Field(description="The reasoning that connects the evidence to the diagnosis.")
    recommended_follow_up: list[FollowUp] = Field(
        description="Recommended follow-up examinations (at least one)."
    )
    citations: list[str] = Field(description="Every evidence passage id cited anywhere in the draft.")


class Classification(BaseModel):
    """The video classification the report rests on (from the model, or given by the user)."""

    label: str
    label_name: str
    confidence: float | None = None
    probabilities: dict[str, float] = Field(default_factory=dict)
    abstained: bool = False
    source: Literal["model", "user"]
    abstain_threshold: float | None = None
    checkpoint: dict[str, Any] | None = None


class KeyFrame(BaseModel):
    """One key frame picked by the key-frame tool."""

    model_config = ConfigDict(extra="allow")

    rank: int
    index: int
    time_s: float | None = None
    score: float
    reason: str = ""
    frame_path: str | None = None
    overlay_path: str | None = None


def frame_when(index: Any, time_s: float | None) -> str:
    """'frame 12 at 1.20 s', or 'frame 12' when the clip has no timing (a still image)."""
    return f"frame {index}" if time_s is None else f"frame {index} at {time_s:.2f} s"


class Passage(BaseModel):
    """One retrieved guideline passage, citable by its id."""

    model_config = ConfigDict(extra="allow")

    id: str
    source: str
    title: str = ""
    section: str = ""
    document: str = ""
    text: str = ""
    score: float | None = None


class NodeError(BaseModel):
    """A failure recorded by one graph node."""

    node: str
    message: str


class Report(BaseModel):
    """Everything in ``report.json``."""

    case_id: str
    classification: Classification | None
    key_frames: list[KeyFrame]
    evidence: list[Passage]
    preliminary_diagnosis: list[Differential]
    justification: str
    recommended_follow_up: list[FollowUp]
    citations: list[str]
    backend: dict[str, Any] | None
    disclaimer: str = DISCLAIMER
    errors: list[NodeError] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    generated_at: str = Field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    checkpoint: str | None = None

    @property
    def failed(self) -> bool:
        """True when the case could not be classified (no model result and no user label)."""
        return self.classification is None

    @property
    def written_by_llm(self) -> bool:
        return bool(self.backend and self.backend.get("written_by") == "llm")


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write a file so that readers see either the old content or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_report(report: Report, out_dir: str | Path) -> dict[str, Path]:
    """Write ``report.md``, ``report.html`` and, last (its presence marks completion), ``report.json``."""
    from agent.render import render_html, render_markdown

    out = Path(out_dir)
    paths = {"md": out / "report.md", "html": out / "report.html", "json": out / "report.json"}
    atomic_write(paths["md"], render_markdown(report))
    atomic_write(paths["html"], render_html(report, base_dir=out))
    atomic_write(paths["json"], json.dumps(report.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n")
    return paths


def read_report(path: str | Path) -> Report:
    """Load a ``report.json`` (raises ``ValueError``/``OSError`` when missing or incomplete)."""
    return Report.model_validate_json(Path(path).read_text(encoding="utf-8"))
