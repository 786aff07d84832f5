"""Classify clips with a checkpoint: ``get_classifier(ckpt).predict(path) -> Prediction``."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from models.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
from models.errors import CheckpointError
from models.video import InputSpec, load_clip


@dataclass
class Prediction:
    """One clip's result. ``abstained``: confidence under the checkpoint's threshold (label still given)."""

    path: str
    label: str
    confidence: float
    probabilities: dict[str, float]
    abstained: bool

    def to_dict(self) -> dict[str, Any]:
        """The ``autous classify --json`` line."""
        return {
            "path": self.path,
            "label": self.label,
            "confidence": round(self.confidence, 6),
            "probabilities": {k: round(v, 6) for k, v in self.probabilities.items()},
            "abstained": self.abstained,
        }


class Classifier:
    """A loaded checkpoint ready to classify clips (use :func:`get_classifier` to share one)."""

    def __init__(self, checkpoint: str | Path) -> None:
        self.checkpoint = Path(checkpoint)
        self.model, self.meta = load_checkpoint(self.checkpoint)
        try:
            self.spec = InputSpec.from_dict(self.meta.input_spec)
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{self.checkpoint}: invalid input spec ({exc})") from None
        self.classes: list[str] = list(self.meta.classes)
        self.lock = threading.Lock()  # one forward pass at a time (Grad-CAM hooks in models.explain rely on it)

    @property
    def abstain_threshold(self) -> float:
        return float(self.meta.abstain_threshold)

    def predict(self, path: str | Path) -> Prediction:
        """Read, preprocess and classify one input (raises ``VideoError`` for unreadable input)."""
        x, _ = load_clip(path, self.spec)
        return self.predict_tensor(x, path=str(path))

    def predict_tensor(self, x: torch.Tensor, path: str = "<tensor>") -> Prediction:
        """Classify a preprocessed clip ``[T, 1, S, S]`` (or ``[1, T, 1, S, S]``)."""
        probs = self.probabilities(x)
        conf, idx = probs.max(0)
        confidence = float(conf)
        return Prediction(
            path=path,
            label=self.classes[int(idx)],
            confidence=confidence,
            probabilities={c: float(p) for c, p in zip(self.classes, probs)},
            abstained=confidence < self.abstain_threshold,
        )

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """Softmax class probabilities ``[C]`` for one preprocessed clip."""
        if x.dim() == 4:
            x = x.unsqueeze(0)
        with self.lock, torch.inference_mode():
            return torch.softmax(self.model(x.float()), dim=-1)[0]


_CACHE: dict[tuple[str, int], Classifier] = {}
_CACHE_LOCK = threading.Lock()


def resolve_checkpoint(checkpoint: str | Path | None = None) -> Path:
    """The checkpoint path to use: the given one, else the bundled default."""
    return Path(checkpoint).expanduser().resolve() if checkpoint else DEFAULT_CHECKPOINT


def get_classifier(checkpoint: str | Path | None = None) -> Classifier:
    """A process-wide cached :class:`Classifier` (keyed by resolved path and file mtime)."""
    path = resolve_checkpoint(checkpoint)
    try:
        key = (str(path), path.stat().st_mtime_ns)
    except OSError:
        raise CheckpointError(f"{path}: checkpoint file does not exist") from None
    with _CACHE_LOCK:
        if key not in _CACHE:
            for stale in [k for k in _CACHE if k[0] == key[0]]:  # the file was rewritten: free the old model
                del _CACHE[stale]
            _CACHE[key] = Classifier(path)
        return _CACHE[key]

