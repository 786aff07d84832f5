"""CTU-Net: a three-path CNN-Transformer video classifier sized for two CPU cores.

Input ``x`` is ``[B, T, 1, S, S]`` (preprocessed grayscale frames). Three paths each
give a clip embedding and per-frame embeddings of width ``embed_dim``:

* spatial: a small CNN per frame (its last block is ``cam_layer``), mean over frames;
* temporal: a Transformer encoder over per-frame CNN features and their frame-to-frame
  differences, with attention pooling (``temporal_weights``);
* frequency: log-magnitude 2-D FFT of each frame (texture, B-line spacing) and the FFT
  along time of pooled pixel intensities (lung sliding, B-line flicker), each by a tiny CNN.

A gate scores the path embeddings (``path_weights``, softmax over paths) and a single
linear head maps the fused embedding to logits. The same head applied to the per-frame
fused embeddings gives ``frame_logits``: per-frame class evidence.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

PATHS: tuple[str, ...] = ("spatial", "temporal", "frequency")


@dataclass
class CTUNetConfig:
    """Architecture hyper-parameters; stored in checkpoints as a plain dict."""

    num_classes: int = 3
    num_frames: int = 16
    image_size: int = 112
    width: int = 16
    depth: int = 2
    heads: int = 4
    embed_dim: int = 64
    dropout: float = 0.2
    paths: tuple[str, ...] = field(default_factory=lambda: PATHS)

    def __post_init__(self) -> None:
        self.paths = tuple(self.paths)
        unknown = set(self.paths) - set(PATHS)
        if not self.paths or unknown:
            raise ValueError(f"paths must be a non-empty subset of {PATHS}, got {self.paths}")
        if self.embed_dim % self.heads:
            raise ValueError(f"embed_dim {self.embed_dim} is not divisible by heads {self.heads}")
        if self.num_classes < 2 or self.num_frames < 2 or self.image_size < 32:
            raise ValueError("need num_classes >= 2, num_frames >= 2, image_size >= 32")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["paths"] = list(self.paths)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CTUNetConfig":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown CTU-Net config keys: {sorted(unknown)}")
        return cls(**d)


def _conv_bn(cin: int, cout: int, stride: int = 1, groups: int = 1, k: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class _Block(nn.Module):
    """A 3x3 conv (strided or not), then a depthwise-separable conv with a residual connection."""

    def __init__(self, cin: int, cout: int, stride: int = 2) -> None:
        super().__init__()
        self.down = _conv_bn(cin, cout, stride=stride)
        self.dw = nn.Sequential(
            nn.Conv2d(cout, cout, 3, padding=1, groups=cout, bias=False),
            nn.Conv2d(cout, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.down(x)
        return F.relu(x + self.dw(x))


class FrameEncoder(nn.Module):
    """Per-frame CNN, widths w, 2w, 4w, 6w; output ``[N, 6w, S/16, S/16]``.

    The stem is a 4x4 space-to-depth and a 1x1 conv (cheap on CPU, forward and backward),
    then two stride-2 blocks and a last block at the same resolution (the Grad-CAM layer).
    """

    def __init__(self, width: int) -> None:
        super().__init__()
        chans = (width, 2 * width, 4 * width, 6 * width)
        self.stem = nn.Sequential(nn.PixelUnshuffle(4), _conv_bn(16, chans[0], k=1))
        self.blocks = nn.Sequential(
            _Block(chans[0], chans[1]), _Block(chans[1], chans[2]), _Block(chans[2], chans[3], stride=1)
        )
        self.out_channels = chans[3]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(x))


class TemporalPath(nn.Module):
    """Transformer over frame tokens (features + differences), attention pooling."""

    def __init__(self, cin: int, cfg: CTUNetConfig) -> None:
        super().__init__()
        d = cfg.embed_dim
        self.proj = nn.Sequential(nn.Linear(2 * cin, d), nn.LayerNorm(d))
        self.pos = nn.Parameter(torch.zeros(1, cfg.num_frames, d))
        nn.init.trunc_normal_(self.pos, std=0.02)
        layer = nn.TransformerEncoderLayer(
            d, cfg.heads, dim_feedforward=2 * d, dropout=cfg.dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, cfg.depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.score = nn.Linear(d, 1)

    def forward(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``feats [B, T, C]`` -> (clip ``[B, d]``, tokens ``[B, T, d]``, weights ``[B, T]``)."""
        diff = torch.cat([torch.zeros_like(feats[:, :1]), feats[:, 1:] - feats[:, :-1]], dim=1)
        tok = self.proj(torch.cat([feats, diff], dim=-1))
        tok = tok + _fit_positions(self.pos, tok.shape[1])
        tok = self.norm(self.encoder(tok))
        weights = torch.softmax(self.score(tok).squeeze(-1), dim=1)
        return (weights.unsqueeze(-1) * tok).sum(1), tok, weights


def check_input(x: torch.Tensor) -> None:
    """Raise ``ValueError`` unless ``x`` is a clip batch ``[B, T, 1, S, S]`` (every model's input)."""
    if x.dim() != 5 or x.shape[2] != 1:
        raise ValueError(f"expected input [B, T, 1, S, S], got {tuple(x.shape)}")


def _fit_positions(pos: torch.Tensor, t: int) -> torch.Tensor:
    """Positional embeddings for ``t`` frames (linearly resampled if T differs from training)."""
    if pos.shape[1] == t:
        return pos
    return F.interpolate(pos.transpose(1, 2), size=t, mode="linear", align_corners=True).transpose(1, 2)


class FrequencyPath(nn.Module):
    """FFT features: per-frame 2-D spectra and the temporal spectrum of pooled intensities."""

    def __init__(self, cfg: CTUNetConfig) -> None:
        super().__init__()
        d = cfg.embed_dim
        self.spatial_side = max(32, cfg.image_size // 2)
        self.grid = max(8, cfg.image_size // 4)
        self.bins = cfg.num_frames // 2  # rfft bins without the DC term
        self.spec2d = nn.Sequential(
            _conv_bn(1, 8, stride=2), _conv_bn(8, 16, stride=2), _conv_bn(16, 32, stride=2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.spec_t = nn.Sequential(
            nn.BatchNorm2d(self.bins), _conv_bn(self.bins, 16, stride=2), _conv_bn(16, 32, stride=2),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.frame_proj = nn.Sequential(nn.Linear(32, d), nn.LayerNorm(d))
        self.clip_proj = nn.Sequential(nn.Linear(32, d), nn.LayerNorm(d))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x [B, T, 1, S, S]`` -> (clip ``[B, d]``, per-frame ``[B, T, d]``)."""
        b, t = x.shape[:2]
        frames = F.adaptive_avg_pool2d(x.flatten(0, 1), self.spatial_side)
        mag = torch.fft.rfft2(frames, norm="ortho").abs()
        mag = torch.fft.fftshift(torch.log1p(mag), dim=-2)
        per_frame = self.frame_proj(self.spec2d(mag)).view(b, t, -1)
        pooled = F.adaptive_avg_pool2d(x.squeeze(2), self.grid)  # [B, T, g, g]
        spec_t = torch.fft.rfft(pooled, n=2 * self.bins, dim=1, norm="ortho").abs()[:, 1:]
        clip_t = self.clip_proj(self.spec_t(torch.log1p(spec_t)))
        return per_frame.mean(1) + clip_t, per_frame + clip_t.unsqueeze(1)


class CTUNet(nn.Module):
    """Spatial + temporal + frequency paths, gated fusion, linear head (see module docstring)."""

    def __init__(self, cfg: CTUNetConfig) -> None:
        super().__init__()
        self.config = cfg
        d = cfg.embed_dim
        self.paths = cfg.paths
        self.frames: FrameEncoder | None = None
        if "spatial" in self.paths or "temporal" in self.paths:
            self.frames = FrameEncoder(cfg.width)
            c = self.frames.out_channels
        if "spatial" in self.paths:
            self.spatial_proj = nn.Sequential(nn.Linear(c, d), nn.LayerNorm(d))
        if "temporal" in self.paths:
            self.temporal = TemporalPath(c, cfg)
        if "frequency" in self.paths:
            self.frequency = FrequencyPath(cfg)
        self.gate = nn.Linear(d, 1)
        self.path_bias = nn.Parameter(torch.zeros(len(self.paths)))
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(d, cfg.num_classes)

    @property
    def cam_layer(self) -> nn.Module:
        """The last spatial CNN block; its output ``[B*T, K, h, w]`` is what Grad-CAM hooks."""
        if self.frames is None:
            raise AttributeError("this CTU-Net has no spatial CNN (paths=('frequency',))")
        return self.frames.blocks[-1]

    def forward(self, x: torch.Tensor, return_aux: bool = False) -> torch.Tensor | dict[str, torch.Tensor]:
        check_input(x)
        b, t = x.shape[:2]
        clip_emb: list[torch.Tensor] = []
        frame_emb: list[torch.Tensor] = []
        temporal_weights = torch.full((b, t), 1.0 / t, device=x.device, dtype=x.dtype)
        if self.frames is not None:
            fmap = self.frames(x.flatten(0, 1))
            feats = fmap.mean(dim=(2, 3)).view(b, t, -1)
        for path in self.paths:
            if path == "spatial":
                per = self.spatial_proj(feats)
                clip_emb.append(per.mean(1))
                frame_emb.append(per)
            elif path == "temporal":
                clip, tok, temporal_weights = self.temporal(feats)
                clip_emb.append(clip)
                frame_emb.append(tok)
            else:
                clip, per = self.frequency(x)
                clip_emb.append(clip)
                frame_emb.append(per)
        stacked = torch.stack(clip_emb, dim=1)  # [B, P, d]
        path_weights = torch.softmax(self.gate(stacked).squeeze(-1) + self.path_bias, dim=1)
        fused = (path_weights.unsqueeze(-1) * stacked).sum(1)
        logits = self.head(self.drop(fused))
        if not return_aux:
            return logits
        frames_fused = (path_weights[:, None, :, None] * torch.stack(frame_emb, dim=2)).sum(2)
        return {
            "logits": logits,
            "frame_logits": self.head(frames_fused),
            "temporal_weights": temporal_weights,
            "path_weights": path_weights,
        }


ModelFactory = Callable[[dict[str, Any]], nn.Module]
_REGISTRY: dict[str, ModelFactory] = {}
_LAZY_MODULES = {"frame_cnn": "models.baselines", "cnn3d": "models.baselines"}


def register_model(name: str) -> Callable[[ModelFactory], ModelFactory]:
    """Decorator: make ``build_model(name, config)`` call the decorated factory."""

    def deco(fn: ModelFactory) -> ModelFactory:
        _REGISTRY[name] = fn
        return fn

    return deco


@register_model("ctunet")
def _build_ctunet(config: dict[str, Any]) -> nn.Module:
    return CTUNet(CTUNetConfig.from_dict(config))


def build_model(arch: str, config: dict[str, Any]) -> nn.Module:
    """Build a registered architecture from its config dict (raises ``KeyError``/``ValueError``)."""
    if arch not in _REGISTRY and arch in _LAZY_MODULES:
        import importlib

        importlib.import_module(_LAZY_MODULES[arch])
    if arch not in _REGISTRY:
        raise KeyError(f"unknown architecture {arch!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[arch](dict(config))


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
