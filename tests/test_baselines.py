"""Baselines: the POCOVID-style frame CNN and the X3D-like 3-D CNN, built through the registry."""
from __future__ import annotations

import pytest
import torch

from models.baselines import BaselineConfig, CNN3D, FrameCNN
from models.ctunet import build_model, count_parameters

TINY = {"num_classes": 3, "num_frames": 6, "image_size": 48, "width": 4}


@pytest.mark.parametrize("arch, cls", [("frame_cnn", FrameCNN), ("cnn3d", CNN3D)])
def test_registry_builds_baselines_with_ctunet_outputs(arch, cls):
    torch.manual_seed(0)
    model = build_model(arch, TINY).eval()
    assert isinstance(model, cls) and count_parameters(model) > 0
    x = torch.randn(2, 6, 1, 48, 48)
    with torch.no_grad():
        logits = model(x)
        aux = model(x, return_aux=True)
    assert logits.shape == (2, 3)
    assert torch.allclose(aux["logits"], logits)
    assert aux["frame_logits"].shape == (2, 6, 3)
    assert torch.allclose(aux["temporal_weights"].sum(1), torch.ones(2))
    with torch.no_grad():  # another clip length works too
        assert model(torch.randn(1, 9, 1, 48, 48)).shape == (1, 3)


def test_frame_cnn_averages_frame_logits():
    model = build_model("frame_cnn", TINY).eval()
    x = torch.randn(1, 6, 1, 48, 48)
    with torch.no_grad():
        aux = model(x, return_aux=True)
        single = model(x[:, 2:3])
    assert torch.allclose(aux["logits"], aux["frame_logits"].mean(1), atol=1e-6)
    assert torch.allclose(single, aux["frame_logits"][:, 2], atol=1e-5)  # each frame is classified alone
    assert model.cam_layer is model.features[-1]


def test_bad_input_and_config_are_rejected():
    model = build_model("cnn3d", TINY)
    with pytest.raises(ValueError, match=r"expected input \[B, T, 1, S, S\]"):
        model(torch.randn(2, 6, 48, 48))
    with pytest.raises(ValueError, match="unknown baseline config keys"):
        build_model("frame_cnn", {**TINY, "paths": ["spatial"]})
    with pytest.raises(ValueError):
        BaselineConfig(num_classes=1)
    assert BaselineConfig.from_dict(BaselineConfig(width=8).to_dict()).width == 8


@pytest.mark.parametrize("arch", ["frame_cnn", "cnn3d"])
def test_baselines_learn_a_separable_toy_task(arch):
    """Bright vs dark clips: a few Adam steps must drive the training loss down."""
    torch.manual_seed(0)
    model = build_model(arch, {**TINY, "num_classes": 2, "dropout": 0.0})
    x = torch.randn(8, 6, 1, 48, 48) * 0.3
    y = torch.tensor([0, 1] * 4)
    x[y == 1] += 1.0
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
