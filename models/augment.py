"""Ultrasound augmentations on cached uint8 frames, deterministic under a numpy Generator.

The decode cache holds ``2T`` uniformly sampled, cropped and resized frames per clip
(``[2T, S, S]`` uint8); its even frames are exactly the evaluation sampling. Training
picks ``T`` of them (temporal jitter), then applies one small affine transform to all
frames, a horizontal flip, gain/contrast/gamma, and speckle-like multiplicative noise,
before the same normalisation as inference.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch.nn import functional as F

from models.video import InputSpec, normalize


@dataclass(frozen=True)
class AugmentConfig:
    """Strength of each augmentation (0 disables it)."""

    rotate_deg: float = 10.0
    scale: float = 0.1
    translate: float = 0.06
    flip_p: float = 0.5
    gain: float = 0.25
    gamma: float = 0.3
    speckle: float = 0.15

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def eval_frames(cached: np.ndarray, num_frames: int) -> np.ndarray:
    """The evaluation sampling from a ``2T`` cache: every other frame (``T`` frames)."""
    return cached[::2][:num_frames] if len(cached) >= 2 * num_frames else _resample(cached, num_frames, 0, 1.0)


def _resample(frames: np.ndarray, t: int, start: float, stride: float) -> np.ndarray:
    idx = np.clip(np.floor(start + stride * np.arange(t)).astype(np.int64), 0, len(frames) - 1)
    return frames[idx]


def temporal_jitter(cached: np.ndarray, num_frames: int, rng: np.random.Generator) -> np.ndarray:
    """``T`` frames of the ``2T`` cache: stride 2 at offset 0/1 (whole clip) or stride 1 (half of it)."""
    n = len(cached)
    if rng.random() < 0.5:
        stride = n / num_frames
        return _resample(cached, num_frames, rng.integers(0, max(1, int(stride))), stride)
    start = rng.integers(0, max(1, n - num_frames + 1))
    return _resample(cached, num_frames, start, 1.0)


def _affine(x: torch.Tensor, cfg: AugmentConfig, rng: np.random.Generator) -> torch.Tensor:
    """One random rotation/scale/translation (and flip) for all frames of ``x [T,1,S,S]``."""
    angle = math.radians(rng.uniform(-cfg.rotate_deg, cfg.rotate_deg))
    scale = 1.0 + rng.uniform(-cfg.scale, cfg.scale)
    tx, ty = rng.uniform(-cfg.translate, cfg.translate, size=2) * 2
    flip = -1.0 if rng.random() < cfg.flip_p else 1.0
    cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
    theta = torch.tensor([[flip * cos, -sin, tx], [flip * sin, cos, ty]], dtype=x.dtype)
    grid = F.affine_grid(theta.expand(len(x), 2, 3), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def augment_clip(cached: np.ndarray, spec: InputSpec, rng: np.random.Generator,
                 cfg: AugmentConfig = AugmentConfig()) -> torch.Tensor:
    """A randomly augmented training input ``[T, 1, S, S]`` (normalised like inference)."""
    frames = temporal_jitter(np.asarray(cached), spec.num_frames, rng)
    x = torch.from_numpy(frames.astype(np.float32) / 255.0).unsqueeze(1)
    x = _affine(x, cfg, rng)
    gain = math.exp(rng.uniform(-cfg.gain, cfg.gain))
    gamma = math.exp(rng.uniform(-cfg.gamma, cfg.gamma))
    x = (x.clamp(0, 1) ** gamma) * gain
    if cfg.speckle > 0:
        sigma = rng.uniform(0, cfg.speckle)
        noise = torch.from_numpy(rng.standard_normal(x.shape).astype(np.float32))
        x = x * (1 + sigma * noise).clamp_min(0)
    out = (x.clamp(0, 1) * 255).round().to(torch.uint8).squeeze(1).numpy()
    return normalize(out, spec)
