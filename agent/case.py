"""A case: a folder with the clip and ``case.yaml`` (clinical text, optional user classification)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from models.classes import resolve_class
from models.errors import UserError

CASE_FILE = "case.yaml"
CLINICAL_FIELDS = ("chief_complaint", "physical_exam", "additional_info")
VIDEO_EXTS = {".mp4", ".mov", ".avi", ".mpeg", ".mpg", ".mkv", ".webm", ".gif"}
IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


class CaseError(UserError):
    """A case folder or case.yaml that cannot be used."""


class Case(BaseModel):
    """The contents of ``case.yaml``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=100)
    chief_complaint: str = ""
    physical_exam: str = ""
    additional_info: str = ""
    age: int | None = Field(default=None, ge=0, le=130)
    sex: str | None = None
    video: str | None = None
    classification: str | None = None

    @field_validator("classification")
    @classmethod
    def _known_class(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return resolve_class(value).id
        except KeyError as exc:
            raise ValueError(exc.args[0]) from None


@dataclass
class LoadedCase:
    """A validated case: its fields, folder, the clip to analyse (None with a user label) and notes."""

    case: Case
    dir: Path
    video_path: Path | None
    notes: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.case.id or self.dir.name


def _clip_candidates(folder: Path) -> list[Path]:
    """Video files, images and frame folders (subfolders of images) directly in the case folder."""
    found = []
    for p in sorted(folder.iterdir()):
        if p.name.startswith("."):
            continue
        if p.is_file() and p.suffix.lower() in VIDEO_EXTS | IMAGE_EXTS:
            found.append(p)
        elif p.is_dir() and any(q.suffix.lower() in IMAGE_EXTS for q in p.iterdir() if q.is_file()):
            found.append(p)
    return found


def _describe(err: dict) -> str:
    loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
    if err["type"] == "extra_forbidden":
        return f"unknown key '{loc}' (allowed: {', '.join(Case.model_fields)})"
    return f"field '{loc}': {err['msg']} (got {err.get('input')!r})"


def parse_case(path: Path) -> Case:
    """Read and validate ``case.yaml``; every problem is one line naming the file and the field."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CaseError(f"{path}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise CaseError(f"{path}: not UTF-8 text") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise CaseError(f"{path}: malformed YAML{where}: {getattr(exc, 'problem', None) or exc}") from None
    if data is None:
        raise CaseError(f"{path}: empty file; expected chief_complaint, physical_exam, additional_info")
    if not isinstance(data, dict):
        raise CaseError(f"{path}: expected a mapping of keys to values, got {type(data).__name__}")
    try:
        return Case.model_validate(data)
    except ValidationError as exc:
        raise CaseError(f"{path}: " + "; ".join(_describe(e) for e in exc.errors())) from None


def load_case(folder: str | Path) -> LoadedCase:
    """Load a case folder: validate ``case.yaml`` and find its clip. Raises ``CaseError``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CaseError(f"{folder}: not a case folder (expected a folder with {CASE_FILE} and a clip)")
    yaml_path = folder / CASE_FILE
    if not yaml_path.is_file():
        raise CaseError(f"{folder}: no {CASE_FILE} in the case folder")
    case = parse_case(yaml_path)
    empty = [f for f in CLINICAL_FIELDS if not getattr(case, f)]
    if len(empty) == len(CLINICAL_FIELDS):
        raise CaseError(f"{yaml_path}: the clinical fields {', '.join(CLINICAL_FIELDS)} are all empty")
    notes = [f"case.yaml gives no {f.replace('_', ' ')}." for f in empty]
    video: Path | None = None
    if case.video:
        video = folder / case.video
        if not video.exists():
            raise CaseError(f"{yaml_path}: field 'video': {case.video} does not exist in {folder}")
    elif case.classification is None:
        clips = _clip_candidates(folder)
        if not clips:
            raise CaseError(f"{folder}: no clip found (a video, image or frames folder) and no 'classification' in {CASE_FILE}")
        if len(clips) > 1:
            names = ", ".join(p.name for p in clips)
            raise CaseError(f"{folder}: several clips ({names}); name one with 'video:' in {CASE_FILE}")
        video = clips[0]
    return LoadedCase(case=case, dir=folder, video_path=video, notes=notes)
