"""The typed state that flows through the diagnosis graph (JSON-serialisable, checkpointable)."""
from __future__ import annotations

import operator
from typing import Annotated, Any, Literal, TypedDict


class NodeErrorDict(TypedDict):
    node: str
    message: str


class DiagnosisState(TypedDict, total=False):
    """Graph state. ``errors`` and ``notes`` accumulate; every other key is last-write-wins."""

    case_dir: str
    out_dir: str
    case_id: str
    case: dict[str, Any]
    video_path: str | None
    classification: dict[str, Any] | None
    key_frames: list[dict[str, Any]]
    passages: list[dict[str, Any]]
    draft: dict[str, Any] | None
    draft_by: Literal["llm", "rules"]
    attempts: int
    problems: list[str]
    report: dict[str, Any] | None
    errors: Annotated[list[NodeErrorDict], operator.add]
    notes: Annotated[list[str], operator.add]
