"""CTU-Net shapes, path ablations, gradients and the model registry."""
from __future__ import annotations

import pytest
import torch

from models.ctunet import PATHS, CTUNet, CTUNetConfig, build_model, count_parameters

SMALL = dict(num_classes=3, num_frames=8, image_size=64, width=8, embed_dim=32, heads=4, depth=1)


@pytest.mark.parametrize("paths", [PATHS, ("spatial",), ("temporal",), ("frequency",), ("spatial", "frequency")])
def test_forward_backward_shapes(paths):
    torch.manual_seed(0)
    model = CTUNet(CTUNetConfig(**SMALL, paths=paths))
    x = torch.randn(2, 8, 1, 64, 64, requires_grad=True)
    out = model(x, return_aux=True)
    assert out["logits"].shape == (2, 3)
    assert out["frame_logits"].shape == (2, 8, 3)
    assert out["temporal_weights"].shape == (2, 8)
    assert torch.allclose(out["temporal_weights"].sum(1), torch.ones(2), atol=1e-5)
    assert out["path_weights"].shape == (2, len(paths))
    out["logits"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    trained = [n for n, p in model.named_parameters() if p.grad is None]
    assert not trained, f"parameters without gradient: {trained[:3]}"


def test_eval_is_deterministic_and_frame_logits_use_the_head():
    torch.manual_seed(0)
    model = CTUNet(CTUNetConfig(**SMALL)).eval()
    x = torch.randn(1, 8, 1, 64, 64)
    a, b = model(x, return_aux=True), model(x, return_aux=True)
    assert torch.equal(a["logits"], b["logits"])
    assert torch.equal(model(x), a["logits"])
    assert not torch.allclose(a["frame_logits"][0, 0], a["frame_logits"][0, -1])


def test_frame_logits_share_the_clip_head():
    """Spatial path alone: the clip logits are exactly the mean of the per-frame evidence."""
    torch.manual_seed(0)
    model = CTUNet(CTUNetConfig(**SMALL, paths=("spatial",))).eval()
    out = model(torch.randn(2, 8, 1, 64, 64), return_aux=True)
    assert torch.allclose(out["frame_logits"].mean(1), out["logits"], atol=1e-5)


def test_cam_layer_output_shape():
    model = CTUNet(CTUNetConfig(**SMALL)).eval()
    seen = {}
    handle = model.cam_layer.register_forward_hook(lambda m, i, o: seen.setdefault("out", o))
    model(torch.randn(2, 8, 1, 64, 64))
    handle.remove()
    assert seen["out"].shape[:2] == (16, 6 * 8) and seen["out"].shape[2:] == (4, 4)


def test_default_size_budget():
    model = CTUNet(CTUNetConfig())
    assert 50_000 < count_parameters(model) < 1_500_000
    assert model(torch.randn(1, 16, 1, 112, 112)).shape == (1, 3)


def test_config_round_trip_and_registry():
    cfg = CTUNetConfig(**SMALL, paths=("temporal", "frequency"))
    assert CTUNetConfig.from_dict(cfg.to_dict()) == cfg
    model = build_model("ctunet", cfg.to_dict())
    assert isinstance(model, CTUNet) and model.paths == ("temporal", "frequency")
    with pytest.raises(KeyError, match="unknown architecture"):
        build_model("resnet9000", {})
    with pytest.raises(ValueError, match="unknown CTU-Net config keys"):
        CTUNetConfig.from_dict({"num_classes": 3, "colour": "blue"})
    with pytest.raises(ValueError, match="paths"):
        CTUNetConfig(paths=("spectral",))


def test_bad_input_shape():
    model = CTUNet(CTUNetConfig(**SMALL))
    with pytest.raises(ValueError, match=r"\[B, T, 1, S, S\]"):
        model(torch.randn(2, 8, 64, 64))
