"""A tiny random-init CTU-Net checkpoint with full metadata, for any test that needs a model.

``from model_fixtures import make_tiny_checkpoint`` (pytest puts ``tests/`` on ``sys.path``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from models.checkpoint import CheckpointMeta, save_checkpoint
from models.ctunet import CTUNet, CTUNetConfig
from models.video import InputSpec

TINY = {"num_frames": 8, "image_size": 64, "width": 8, "depth": 1, "heads": 2, "embed_dim": 32}


def make_tiny_checkpoint(path: str | Path, classes: list[str] | tuple[str, ...] = ("covid19", "normal"),
                         abstain_threshold: float = 0.5, seed: int = 0, **config: Any) -> Path:
    """Save a small random-init CTU-Net (T=8, S=64 unless ``config`` overrides) at ``path``."""
    cfg = CTUNetConfig.from_dict({**TINY, **config, "num_classes": len(classes)})
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = CTUNet(cfg).eval()
    spec = InputSpec(num_frames=cfg.num_frames, image_size=cfg.image_size)
    meta = CheckpointMeta(
        name="tiny-test", arch="ctunet", classes=list(classes), input_spec=spec.to_dict(),
        config=cfg.to_dict(), recipe={"note": "random init, untrained (test fixture)"},
        data={}, metrics={}, abstain_threshold=abstain_threshold,
    )
    save_checkpoint(path, model, meta)
    return Path(path)
