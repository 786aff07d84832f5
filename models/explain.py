"""Why the classifier said what it said: per-frame evidence, attention and Grad-CAM.

``explain_clip`` runs the model once with gradients on one clip and returns, per sampled
frame, the class evidence for a target class, the temporal attention weight and a Grad-CAM
heat map (on ``model.cam_layer``). ``frame_importance`` and ``select_key_frames`` turn that
into the few frames a clinician should look at, spread over the clip.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from models.classes import class_info
from models.errors import UserError

if TYPE_CHECKING:
    import torch

    from models.inference import Classifier, Prediction
    from models.video import Clip

# How much each signal counts in a frame's importance (they sum to 1).
WEIGHTS: dict[str, float] = {"evidence": 0.5, "attention": 0.25, "saliency": 0.25}
# Two frames are near-duplicates when, inside the image sector, their correlation is above
# MAX_SIMILARITY or they differ by less than MIN_CHANGE grey levels on average. On the 90 POCUS
# clips, frames 0.4-1 s apart correlate 0.89-0.998 and differ by 1.6-11 grey levels.
MAX_SIMILARITY = 0.99
MIN_CHANGE = 1.0


@dataclass
class Explanation:
    """Per-frame explanation of one prediction (arrays indexed by sampled frame)."""

    clip: Clip
    prediction: Prediction
    target: str
    frame_scores: np.ndarray  # [T] evidence for the target class (frame-level softmax)
    temporal_weights: np.ndarray  # [T] attention pooling weights, sum 1
    saliency: np.ndarray  # [T] mean raw Grad-CAM activation per frame
    heatmaps: np.ndarray  # [T, S, S] in [0, 1], normalised over the whole clip
    display_frames: np.ndarray  # [T, S, S] uint8, the preprocessed frames the model saw
    method: str  # which signals were available ("grad-cam", "frame-logits", ...)


def explain_clip(classifier: Classifier, path: str | Path, target: str | None = None) -> Explanation:
    """Explain the classifier's decision on one clip for ``target`` (default: the predicted class).

    Raises ``VideoError`` for unreadable clips and ``UserError`` for a target the checkpoint
    does not know.
    """
    import torch

    from models.video import crop_resize, normalize, read_clip

    spec = classifier.spec
    clip = read_clip(path, spec.num_frames)
    shown = crop_resize(clip.frames, spec)  # what load_clip feeds the model, before normalising
    x = normalize(shown, spec)
    classes = list(classifier.meta.classes)
    prediction = classifier.predict_tensor(x, path=str(path))
    label = target or prediction.label
    if label not in classes:
        raise UserError(f"{path}: unknown target class {label!r}; checkpoint classes: {', '.join(classes)}")
    c = classes.index(label)
    with classifier.lock:  # the hook must only see this forward pass
        out, cams, saliency_method = _forward_with_cam(classifier.model, x.unsqueeze(0), lambda lg: lg[0, c])
    t = x.shape[0]
    methods = [saliency_method]
    saliency = cams.flatten(1).mean(1).numpy().astype(np.float64)
    if "frame_logits" in out:
        frame_scores = torch.softmax(out["frame_logits"][0].detach(), -1)[:, c].numpy()
        methods.append("frame-logits")
    else:
        frame_scores = saliency / max(saliency.max(), 1e-12)
    if "temporal_weights" in out:
        temporal_weights = out["temporal_weights"][0].detach().numpy()
        methods.append("temporal-attention")
    else:
        temporal_weights = np.full(t, 1.0 / t)
    heat = cams / max(float(cams.max()), 1e-12)
    return Explanation(
        clip=clip,
        prediction=prediction,
        target=label,
        frame_scores=np.asarray(frame_scores, np.float64),
        temporal_weights=np.asarray(temporal_weights, np.float64),
        saliency=saliency,
        heatmaps=heat.numpy().astype(np.float32),
        display_frames=shown,
        method="+".join(methods),
    )


def _forward_with_cam(model: Any, x: torch.Tensor,
                      pick: Callable[[torch.Tensor], torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor, str]:
    """Run ``model`` on ``x [1,T,1,S,S]``: its outputs, per-frame maps ``[T,S,S]`` (>= 0), the method.

    Grad-CAM on ``model.cam_layer`` when the model has one (4-D ``[T,K,h,w]`` or 3-D CNN
    ``[1,K,t,h,w]`` activations), else the absolute input gradient. ``pick(logits)`` selects
    the scalar to explain.
    """
    import torch
    from torch.nn import functional as F

    try:
        layer = model.cam_layer
    except AttributeError:
        layer = None
    acts: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _m, _i, o: acts.append(o)) if layer is not None else None
    t, s = x.shape[1], x.shape[-1]
    with torch.enable_grad():
        xin = x.detach().clone().requires_grad_(True)
        try:
            out = model(xin, return_aux=True) if _accepts_aux(model) else model(xin)
        finally:
            if handle is not None:
                handle.remove()
        out = out if isinstance(out, dict) else {"logits": out}
        if not acts:
            (grad,) = torch.autograd.grad(pick(out["logits"]), xin)
            cams = grad[0, :, 0].abs()
            return out, F.avg_pool2d(cams[:, None], 5, stride=1, padding=2)[:, 0].detach(), "input-gradient"
        act = acts[-1]
        (grad,) = torch.autograd.grad(pick(out["logits"]), act)
    act, grad = act.detach(), grad.detach()
    if act.dim() == 5:  # [1, K, t', h, w] from a 3-D CNN: weights over all positions
        cam = F.relu((grad.mean(dim=(2, 3, 4), keepdim=True) * act).sum(1, keepdim=True))
        cam = F.interpolate(cam, size=(t, s, s), mode="trilinear", align_corners=False)[0, 0]
    else:  # [T, K, h, w]
        cam = F.relu((grad.mean(dim=(2, 3), keepdim=True) * act).sum(1, keepdim=True))
        cam = F.interpolate(cam, size=(s, s), mode="bilinear", align_corners=False)[:, 0]
    return out, cam.clamp_min(0), "grad-cam"


def _accepts_aux(model: Any) -> bool:
    import inspect

    return "return_aux" in inspect.signature(model.forward).parameters


def frame_importance(expl: Explanation) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Score in [0, 1] per frame: weighted evidence, relative attention and relative Grad-CAM mass."""
    parts = {
        "evidence": np.clip(expl.frame_scores, 0.0, 1.0),
        "attention": expl.temporal_weights / max(expl.temporal_weights.max(), 1e-12),
        "saliency": expl.saliency / max(expl.saliency.max(), 1e-12),
    }
    score = sum(WEIGHTS[name] * value for name, value in parts.items())
    return np.round(score, 6), parts


def select_key_frames(scores: np.ndarray, indices: np.ndarray, frames: np.ndarray, k: int,
                      min_gap: int | None = None) -> list[int]:
    """Greedy pick of up to ``k`` sampled-frame positions, best score first, spread over the clip.

    A frame is skipped when it repeats a chosen source frame or is a near-duplicate of a chosen
    one (see ``near_duplicates``). A first pass also keeps chosen frames ``min_gap`` sampled
    positions apart (default ``T // (2k)``); a second pass relaxes only the gap. Ties go to the
    earlier frame, so the result is deterministic.
    """
    t = len(scores)
    gap = max(1, t // (2 * k)) if min_gap is None else max(1, min_gap)
    dup = near_duplicates(frames) | (np.asarray(indices)[:, None] == np.asarray(indices)[None, :])
    order = sorted(range(t), key=lambda i: (-float(scores[i]), i))
    chosen: list[int] = []
    for need_gap in (gap, 1):
        for i in order:
            if len(chosen) == k:
                return chosen
            if i in chosen or any(abs(i - j) < need_gap or dup[i, j] for j in chosen):
                continue
            chosen.append(i)
    return chosen


def near_duplicates(frames: np.ndarray) -> np.ndarray:
    """``[T, T]`` bool: pairs of uint8 frames that look the same inside the image sector."""
    f = np.asarray(frames, np.float64).reshape(len(frames), -1)
    sector = f.max(0) > 10  # pixels that are ever bright: the fan, not the black surround
    v = f[:, sector] if sector.any() else f
    mad = np.abs(v[:, None, :] - v[None, :, :]).mean(-1)
    z = v - v.mean(1, keepdims=True)
    norms = np.linalg.norm(z, axis=1, keepdims=True)
    z = np.divide(z, norms, out=np.zeros_like(z), where=norms > 1e-9)
    return ((z @ z.T) > MAX_SIMILARITY) | (mad < MIN_CHANGE)


def describe_frame(expl: Explanation, pos: int, parts: dict[str, np.ndarray]) -> str:
    """One plain sentence on why frame ``pos`` was chosen and where its evidence lies."""
    name = class_info(expl.target).name
    t = len(expl.frame_scores)
    strongest = max(parts, key=lambda p: WEIGHTS[p] * (parts[p][pos] - parts[p].mean()))
    lead = {
        "evidence": "stands out for its frame-level class evidence",
        "attention": "stands out for the model's temporal attention",
        "saliency": "stands out for its Grad-CAM activation",
    }[strongest]
    return (
        f"{lead}: {expl.frame_scores[pos]:.0%} frame-level probability of {name}, "
        f"attention {expl.temporal_weights[pos] * t:.1f}x the clip average, "
        f"saliency {parts['saliency'][pos]:.0%} of the clip's peak, "
        f"strongest in the {_region(expl.heatmaps[pos])} of the image"
    )


def _region(heat: np.ndarray) -> str:
    """Where a heat map peaks: 'upper (near-field) left', 'middle centre', ..."""
    if float(heat.max()) <= 0:
        return "whole frame (no localised activation)"
    y, x = np.unravel_index(int(np.argmax(heat)), heat.shape)
    rows = ("upper (near-field)", "middle", "lower (far-field)")
    cols = ("left", "centre", "right")
    return f"{rows[min(3 * y // heat.shape[0], 2)]} {cols[min(3 * x // heat.shape[1], 2)]}"
