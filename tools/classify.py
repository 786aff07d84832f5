"""LangChain tool ``classify_ultrasound_video``: CTU-Net on one clip.

Also holds the small error-as-data helpers the other tools share: a tool raises
``ToolException`` inside and LangChain turns it into ``{"error": "..."}`` (a ``ToolMessage``
with ``status="error"`` when called with a tool call), so an agent loop can recover.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from langchain_core.tools import BaseTool, ToolException
from pydantic import BaseModel, Field, ValidationError

from models.classes import class_info
from models.errors import UserError

T = TypeVar("T")


def error_result(exc: Exception) -> dict[str, str]:
    """The tool result for a failed call: ``{"error": "<path>: <problem>"}``."""
    return {"error": str(exc)}


def invalid_input(exc: ValidationError) -> dict[str, str]:
    """The tool result for arguments that do not match the input schema (one line)."""
    problems = "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'input'}: {err['msg']} (got {err.get('input')!r})"
        for err in exc.errors()
    )
    return {"error": f"invalid tool input: {problems}"}


def guarded(path: str | Path, fn: Callable[[], T]) -> T:
    """Run ``fn``; turn any failure into a one-line ``ToolException`` that starts with ``path``."""
    try:
        return fn()
    except UserError as exc:
        raise ToolException(str(exc)) from exc
    except OSError as exc:
        raise ToolException(f"{exc.filename or path}: {exc.strerror or exc}") from exc
    except Exception as exc:  # an agent loop must survive anything a clip can trigger
        raise ToolException(f"{path}: {type(exc).__name__}: {exc}") from exc


class ClipTool(BaseTool):
    """Base of the tools that run the classifier on a clip: checkpoint, errors as data, async."""

    handle_tool_error: Any = error_result
    handle_validation_error: Any = invalid_input
    checkpoint: str | Path | None = None
    """Checkpoint file; ``None`` = the bundled default."""

    async def _arun(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return await asyncio.to_thread(self._run, *args, **kwargs)


class ClassifyInput(BaseModel):
    video_path: str = Field(
        description="Path to the ultrasound clip: a video file (mp4, avi, mov, mpeg, gif), "
        "a folder of frame images, or a single image."
    )


class ClassifyUltrasoundVideoTool(ClipTool):
    """CTU-Net video classification of one ultrasound clip; the model loads once per process."""

    name: str = "classify_ultrasound_video"
    description: str = (
        "Classify one ultrasound video clip with the CTU-Net video classifier. Input: video_path "
        "(video file, GIF, folder of frames or single image). Returns the predicted class id "
        "(label) and its plain name, the confidence, the probability of every class the model "
        "knows, 'abstained' (true when the confidence is below the model's threshold: treat the "
        "result as inconclusive) and the checkpoint identity. Decision support only, not a "
        "diagnosis. On failure returns {'error': '<path>: <problem>'}."
    )
    args_schema: type[BaseModel] = ClassifyInput

    def _run(self, video_path: str) -> dict[str, Any]:
        return guarded(video_path, lambda: self.classify(video_path))

    def classify(self, video_path: str) -> dict[str, Any]:
        """The tool result for one clip (raises ``UserError`` for bad input)."""
        from models.inference import get_classifier

        classifier = get_classifier(self.checkpoint)
        return prediction_result(classifier, classifier.predict(video_path))


def prediction_result(classifier: Any, prediction: Any) -> dict[str, Any]:
    """The JSON-serialisable ``classify_ultrasound_video`` result for a ``Prediction``."""
    from models.checkpoint import describe

    meta = classifier.meta
    return {
        "path": str(prediction.path),
        "label": prediction.label,
        "label_name": class_info(prediction.label).name,
        "confidence": round(float(prediction.confidence), 4),
        "probabilities": {k: round(float(v), 4) for k, v in prediction.probabilities.items()},
        "abstained": bool(prediction.abstained),
        "abstain_threshold": float(meta.abstain_threshold),
        "checkpoint": describe(meta),
    }
