"""Baselines for the classification benchmark, sized like CTU-Net for two CPU cores.

* ``frame_cnn`` — the POCOVID-Net approach (Born et al. 2021): a VGG-style 2-D CNN classifies
  every frame on its own and the clip's logits are the mean of the per-frame logits. POCOVID-Net
  uses an ImageNet VGG-16; this one is small and trained from scratch like the other models.
* ``cnn3d`` — an X3D-like 3-D CNN (Feichtenhofer 2020): a spatial stem, then residual bottleneck
  blocks with depthwise 3x3x3 convolutions over time and space, global pooling, a linear head.

Both take ``x [B, T, 1, S, S]`` and return logits ``[B, C]``; ``return_aux=True`` gives the same
dict keys as CTU-Net (``logits``, ``frame_logits``, ``temporal_weights``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from models.ctunet import check_input, register_model


@dataclass
class BaselineConfig:
    """Hyper-parameters shared by both baselines; stored in checkpoints as a plain dict."""

    num_classes: int = 3
    num_frames: int = 16
    image_size: int = 112
    width: int = 16
    dropout: float = 0.2

    def __post_init__(self) -> None:
        if self.num_classes < 2 or self.num_frames < 1 or self.image_size < 32 or self.width < 4:
            raise ValueError("need num_classes >= 2, num_frames >= 1, image_size >= 32, width >= 4")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "BaselineConfig":
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown baseline config keys: {sorted(unknown)}")
        return cls(**d)


def _aux(logits: torch.Tensor, frame_logits: torch.Tensor) -> dict[str, torch.Tensor]:
    b, t = frame_logits.shape[:2]
    weights = torch.full((b, t), 1.0 / t, device=logits.device, dtype=logits.dtype)
    return {"logits": logits, "frame_logits": frame_logits, "temporal_weights": weights}


def _conv2d(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class FrameCNN(nn.Module):
    """VGG-style per-frame classifier; clip logits = mean of frame logits (POCOVID-Net approach)."""

    def __init__(self, cfg: BaselineConfig) -> None:
        super().__init__()
        self.config = cfg
        w = cfg.width
        self.features = nn.Sequential(
            _conv2d(1, w, stride=2), nn.MaxPool2d(2),
            _conv2d(w, 2 * w), nn.MaxPool2d(2),
            _conv2d(2 * w, 4 * w), _conv2d(4 * w, 4 * w), nn.MaxPool2d(2),
            _conv2d(4 * w, 8 * w),
        )
        self.head = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(8 * w, cfg.num_classes))

    @property
    def cam_layer(self) -> nn.Module:
        """The last conv block; its output ``[B*T, K, h, w]`` is what Grad-CAM hooks."""
        return self.features[-1]

    def forward(self, x: torch.Tensor, return_aux: bool = False) -> torch.Tensor | dict[str, torch.Tensor]:
        check_input(x)
        b, t = x.shape[:2]
        feats = self.features(x.flatten(0, 1)).mean(dim=(2, 3))
        frame_logits = self.head(feats).view(b, t, -1)
        logits = frame_logits.mean(1)
        return _aux(logits, frame_logits) if return_aux else logits


class _X3DBlock(nn.Module):
    """1x1x1 expand, depthwise 3x3x3 (strided), 1x1x1 project; residual over a strided 1x1x1 shortcut."""

    def __init__(self, cin: int, cout: int, stride: tuple[int, int, int], expand: int = 2) -> None:
        super().__init__()
        mid = expand * cout
        self.body = nn.Sequential(
            nn.Conv3d(cin, mid, 1, bias=False), nn.BatchNorm3d(mid), nn.ReLU(inplace=True),
            nn.Conv3d(mid, mid, 3, stride=stride, padding=1, groups=mid, bias=False), nn.BatchNorm3d(mid),
            nn.ReLU(inplace=True),
            nn.Conv3d(mid, cout, 1, bias=False), nn.BatchNorm3d(cout),
        )
        self.shortcut = nn.Sequential(nn.Conv3d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm3d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


class CNN3D(nn.Module):
    """X3D-like 3-D CNN over the whole clip: stem (space, then time), three residual stages."""

    def __init__(self, cfg: BaselineConfig) -> None:
        super().__init__()
        self.config = cfg
        w = cfg.width
        self.stem = nn.Sequential(
            nn.Conv3d(1, w, (1, 5, 5), stride=(1, 4, 4), padding=(0, 2, 2), bias=False),
            nn.Conv3d(w, w, (3, 1, 1), padding=(1, 0, 0), groups=w, bias=False),
            nn.BatchNorm3d(w), nn.ReLU(inplace=True),
        )
        self.stages = nn.Sequential(
            _X3DBlock(w, 2 * w, (1, 2, 2)), _X3DBlock(2 * w, 4 * w, (1, 2, 2)), _X3DBlock(4 * w, 6 * w, (2, 2, 2)),
        )
        self.head = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(6 * w, cfg.num_classes))

    def forward(self, x: torch.Tensor, return_aux: bool = False) -> torch.Tensor | dict[str, torch.Tensor]:
        check_input(x)
        t = x.shape[1]
        fmap = self.stages(self.stem(x.transpose(1, 2)))  # [B, C, T', h, w]
        per_time = fmap.mean(dim=(3, 4))  # [B, C, T']
        logits = self.head(per_time.mean(2))
        if not return_aux:
            return logits
        per_frame = F.interpolate(per_time, size=t, mode="nearest").transpose(1, 2)  # [B, T, C]
        return _aux(logits, self.head(per_frame))


@register_model("frame_cnn")
def _build_frame_cnn(config: dict[str, Any]) -> nn.Module:
    return FrameCNN(BaselineConfig.from_dict(config))


@register_model("cnn3d")
def _build_cnn3d(config: dict[str, Any]) -> nn.Module:
    return CNN3D(BaselineConfig.from_dict(config))
