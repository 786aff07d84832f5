"""Model-agnostic training and patient-grouped cross-validation on cached clips.

``build_fn(num_classes, spec) -> nn.Module`` makes the network (CTU-Net or a baseline);
``frames_fn(record) -> uint8 [2T, S, S]`` gives a clip's cached, cropped, resized frames
(:class:`models.data.ClipCache` in the CLI). Training is deterministic under a seed:
seeded torch/numpy generators, deterministic torch algorithms, no worker processes.
"""
from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from models.augment import AugmentConfig, augment_clip, eval_frames
from models.metrics import choose_abstain_threshold, classification_metrics, summarize_folds
from models.video import InputSpec, normalize

BuildFn = Callable[[int, InputSpec], nn.Module]


class Record(Protocol):
    """What training needs of a data record (``models.data.ClipRecord`` has it)."""

    label: str
    patient: str


FramesFn = Callable[[Any], np.ndarray]
# called after each epoch: (epoch (1-based), epochs, mean training loss, training accuracy)
EpochCallback = Callable[[int, int, float, float], None]


@dataclass
class TrainConfig:
    """The training recipe (stored in checkpoints)."""

    epochs: int = 30
    batch_size: int = 8
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_epochs: int = 2
    label_smoothing: float = 0.1
    class_weighting: str = "sampler"  # "sampler" (balanced sampling), "loss" or "none"
    frame_loss_weight: float = 0.2  # auxiliary loss on per-frame evidence (mean frame logits)
    augment: bool = True
    augment_config: AugmentConfig = field(default_factory=AugmentConfig)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.class_weighting not in ("sampler", "loss", "none"):
            raise ValueError(f"class_weighting must be sampler, loss or none, got {self.class_weighting!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be >= 1")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["optimizer"], d["schedule"] = "AdamW", "linear warm-up then cosine, per step"
        return d


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextmanager
def deterministic(seed: int) -> Iterator[None]:
    """Seed everything and use deterministic torch algorithms inside the block."""
    before = torch.are_deterministic_algorithms_enabled()
    seed_everything(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)


def _epoch_order(labels: np.ndarray, num_classes: int, cfg: TrainConfig, rng: np.random.Generator) -> np.ndarray:
    if cfg.class_weighting != "sampler":
        return rng.permutation(len(labels))
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    weights = 1.0 / counts[labels]
    return rng.choice(len(labels), size=len(labels), replace=True, p=weights / weights.sum())


def _lr_factor(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig,
          class_weights: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    if cfg.frame_loss_weight > 0:
        out = model(x, return_aux=True)
        logits = out["logits"]
        frame = out["frame_logits"].mean(1)
    else:
        logits, frame = model(x), None
    loss = F.cross_entropy(logits, y, weight=class_weights, label_smoothing=cfg.label_smoothing)
    if frame is not None:
        loss = loss + cfg.frame_loss_weight * F.cross_entropy(
            frame, y, weight=class_weights, label_smoothing=cfg.label_smoothing)
    return loss, logits


def train(build_fn: BuildFn, records: Sequence[Record], classes: Sequence[str], spec: InputSpec,
          frames_fn: FramesFn, cfg: TrainConfig, on_epoch: EpochCallback | None = None) -> nn.Module:
    """Train a fresh ``build_fn(len(classes), spec)`` on ``records``; returns it in eval mode."""
    lookup = {c: i for i, c in enumerate(classes)}
    labels = np.array([lookup[r.label] for r in records], dtype=np.int64)
    missing = [c for i, c in enumerate(classes) if not (labels == i).any()]
    if missing:
        raise ValueError(f"no training clips for class(es): {', '.join(missing)}")
    cached = [frames_fn(r) for r in records]
    with deterministic(cfg.seed):
        model = build_fn(len(classes), spec)
        rng = np.random.default_rng(cfg.seed)
        counts = np.bincount(labels, minlength=len(classes)).astype(np.float32)
        class_weights = (torch.from_numpy(counts.sum() / (len(classes) * counts))
                         if cfg.class_weighting == "loss" else None)
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        steps_per_epoch = math.ceil(len(records) / cfg.batch_size)
        total = cfg.epochs * steps_per_epoch
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: _lr_factor(s, total, cfg.warmup_epochs * steps_per_epoch))
        for epoch in range(1, cfg.epochs + 1):
            model.train()
            order = _epoch_order(labels, len(classes), cfg, rng)
            loss_sum, hits = 0.0, 0
            for start in range(0, len(order), cfg.batch_size):
                batch = order[start:start + cfg.batch_size]
                if len(batch) < 2:  # BatchNorm needs more than one clip
                    continue
                x = torch.stack([
                    augment_clip(cached[i], spec, rng, cfg.augment_config) if cfg.augment
                    else normalize(eval_frames(cached[i], spec.num_frames), spec)
                    for i in batch
                ])
                y = torch.from_numpy(labels[batch])
                loss, logits = _loss(model, x, y, cfg, class_weights)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), 5.0)
                opt.step()
                sched.step()
                loss_sum += float(loss.detach()) * len(batch)
                hits += int((logits.argmax(1) == y).sum())
            if on_epoch:
                on_epoch(epoch, cfg.epochs, loss_sum / len(order), hits / len(order))
    return model.eval()


@torch.inference_mode()
def predict_probabilities(model: nn.Module, records: Sequence[Any], spec: InputSpec,
                          frames_fn: FramesFn, batch_size: int = 8) -> np.ndarray:
    """Softmax probabilities ``[N, C]`` with the evaluation frame sampling (no augmentation)."""
    model.eval()
    out = []
    for start in range(0, len(records), batch_size):
        x = torch.stack([normalize(eval_frames(frames_fn(r), spec.num_frames), spec)
                         for r in records[start:start + batch_size]])
        out.append(torch.softmax(model(x), dim=-1).numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


@dataclass
class CVResult:
    """Per-fold metrics, their summary, out-of-fold predictions and the chosen abstain threshold."""

    folds: list[dict[str, Any]]
    summary: dict[str, Any]
    pooled: dict[str, Any]
    abstain: dict[str, float]
    oof_probabilities: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        return {"summary": self.summary, "folds": self.folds, "pooled": self.pooled, "abstain": self.abstain}


def cross_validate(build_fn: BuildFn, records: Sequence[Record], classes: Sequence[str], spec: InputSpec,
                   frames_fn: FramesFn, splits: Sequence[tuple[Sequence[int], Sequence[int]]],
                   cfg: TrainConfig, on_fold: Callable[[int, int], EpochCallback | None] | None = None,
                   abstain_target: float = 0.9) -> CVResult:
    """Train on each split's train part, evaluate on its held-out part (patients never straddle)."""
    probs = np.zeros((len(records), len(classes)), np.float32)
    folds = []
    for k, (train_idx, test_idx) in enumerate(splits):
        model = train(build_fn, [records[i] for i in train_idx], classes, spec, frames_fn, cfg,
                      on_epoch=on_fold(k, len(splits)) if on_fold else None)
        held = [records[i] for i in test_idx]
        p = predict_probabilities(model, held, spec, frames_fn)
        probs[list(test_idx)] = p
        m = classification_metrics([r.label for r in held], p.argmax(1).tolist(), classes)
        folds.append({**m, "fold": k, "patients": len({r.patient for r in held})})
    truth = [r.label for r in records]
    pooled = classification_metrics(truth, probs.argmax(1).tolist(), classes)
    correct = probs.argmax(1) == np.array([classes.index(t) for t in truth])
    abstain = choose_abstain_threshold(probs.max(1), correct, target=abstain_target)
    return CVResult(folds, summarize_folds(folds, classes), pooled, abstain, probs)
