"""Classification metrics, fold summaries, abstention threshold and a confusion-matrix plot."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from models.errors import UserError

SCALARS = ("accuracy", "balanced_accuracy", "macro_f1")


def _indices(labels: Sequence[Any], classes: Sequence[str]) -> np.ndarray:
    lookup = {c: i for i, c in enumerate(classes)}
    return np.array([lookup[v] if isinstance(v, str) else int(v) for v in labels], dtype=np.int64)


def classification_metrics(y_true: Sequence[Any], y_pred: Sequence[Any], classes: Sequence[str]) -> dict[str, Any]:
    """Accuracy, balanced accuracy, macro-F1, per-class P/R/F1/support and the confusion matrix.

    Labels are class names or indices into ``classes``. ``confusion[i][j]`` counts clips of
    true class i predicted as j. Balanced accuracy is the mean recall over classes present
    in ``y_true``; macro-F1 averages over classes present in ``y_true`` or ``y_pred``.
    """
    t, p = _indices(y_true, classes), _indices(y_pred, classes)
    k = len(classes)
    conf = np.zeros((k, k), dtype=np.int64)
    np.add.at(conf, (t, p), 1)
    support, predicted, hits = conf.sum(1), conf.sum(0), np.diag(conf)
    precision = np.divide(hits, predicted, out=np.zeros(k), where=predicted > 0)
    recall = np.divide(hits, support, out=np.zeros(k), where=support > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(k), where=precision + recall > 0)
    present, seen = support > 0, (support + predicted) > 0
    n = int(len(t))
    return {
        "accuracy": float(hits.sum() / n) if n else 0.0,
        "balanced_accuracy": float(recall[present].mean()) if present.any() else 0.0,
        "macro_f1": float(f1[seen].mean()) if seen.any() else 0.0,
        "per_class": {
            c: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                "support": int(support[i])}
            for i, c in enumerate(classes)
        },
        "confusion": conf.tolist(),
        "n": n,
    }


def summarize_folds(fold_metrics: Sequence[dict[str, Any]], classes: Sequence[str]) -> dict[str, Any]:
    """Mean and (population) std over folds of each scalar metric and of per-class recall/F1."""
    def stat(values: list[float]) -> dict[str, float]:
        return {"mean": float(np.mean(values)), "std": float(np.std(values))}

    out: dict[str, Any] = {m: stat([f[m] for f in fold_metrics]) for m in SCALARS}
    out["per_class"] = {
        c: {m: stat([f["per_class"][c][m] for f in fold_metrics if f["per_class"][c]["support"] > 0])
            for m in ("recall", "f1")}
        for c in classes
        if any(f["per_class"][c]["support"] > 0 for f in fold_metrics)
    }
    out["folds"] = len(fold_metrics)
    return out


def choose_abstain_threshold(confidence: Sequence[float], correct: Sequence[bool], target: float = 0.9,
                             min_coverage: float = 0.5) -> dict[str, float]:
    """Lowest confidence threshold whose kept predictions reach ``target`` accuracy.

    Candidates are the observed confidences; a threshold that would abstain on more than
    ``1 - min_coverage`` of the clips is not allowed, so when the target cannot be met
    the threshold keeps exactly ``min_coverage`` of them (the most confident ones).
    Returns ``threshold``, ``coverage`` and ``selective_accuracy`` (accuracy when kept).
    """
    conf = np.asarray(confidence, dtype=np.float64)
    ok = np.asarray(correct, dtype=bool)
    if conf.size == 0:
        return {"threshold": 0.5, "coverage": 0.0, "selective_accuracy": 0.0}
    order = np.argsort(-conf, kind="stable")
    conf, ok = conf[order], ok[order]
    kept_acc = np.cumsum(ok) / np.arange(1, len(ok) + 1)  # accuracy of the top-(i+1)
    min_keep = max(1, int(np.ceil(min_coverage * len(conf))))
    good = [i for i in range(min_keep - 1, len(conf)) if kept_acc[i] >= target]
    i = max(good) if good else min_keep - 1
    return {"threshold": float(conf[i]), "coverage": float((i + 1) / len(conf)),
            "selective_accuracy": float(kept_acc[i])}


def plot_confusion(confusion: Sequence[Sequence[int]], classes: Sequence[str], path: str | Path,
                   title: str = "Confusion matrix") -> Path:
    """Write the confusion matrix (rows: true, columns: predicted) as a PNG (``UserError`` if it cannot)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conf = np.asarray(confusion)
    fig, ax = plt.subplots(figsize=(1.2 * len(classes) + 2.5, 1.1 * len(classes) + 2))
    ax.imshow(conf, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=30, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    top = conf.max() if conf.size else 0
    for (i, j), v in np.ndenumerate(conf):
        ax.text(j, i, str(v), ha="center", va="center", color="white" if v > top / 2 else "black")
    fig.tight_layout()
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120)
    except OSError as exc:
        raise UserError(f"{path}: cannot write the confusion-matrix PNG ({exc.strerror or exc})") from None
    finally:
        plt.close(fig)
    return path
