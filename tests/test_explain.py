"""models.explain: key-frame scoring and selection on arrays, Grad-CAM explanations on real models."""
from __future__ import annotations

import numpy as np
import pytest

from models.explain import WEIGHTS, Explanation, frame_importance, near_duplicates, select_key_frames


def _distinct_frames(t: int, size: int = 48, seed: int = 0) -> np.ndarray:
    """``t`` uncorrelated random frames (no two are near-duplicates)."""
    return np.random.default_rng(seed).integers(0, 256, size=(t, size, size), dtype=np.uint8)


def test_selection_prefers_high_scores_and_keeps_a_gap():
    scores = np.array([0.1, 0.9, 0.95, 0.92, 0.2, 0.3, 0.85, 0.1, 0.1, 0.8, 0.1, 0.1, 0.1, 0.1, 0.7, 0.1])
    chosen = select_key_frames(scores, np.arange(16) * 3, _distinct_frames(16), k=4)
    assert chosen[0] == 2  # the best frame first
    assert len(chosen) == 4
    assert all(abs(a - b) >= 2 for a in chosen for b in chosen if a != b)  # default gap 16 // 8
    assert chosen == [2, 6, 9, 14]  # 1 and 3 sit next to 2, so the next best spread-out frames win


def test_selection_suppresses_near_duplicate_images():
    frames = _distinct_frames(8)
    frames[1] = frames[0]  # identical picture, different source index
    frames[5] = np.clip(frames[0].astype(int) + 3, 0, 255).astype(np.uint8)  # brighter copy
    scores = np.array([0.9, 0.89, 0.1, 0.1, 0.1, 0.88, 0.1, 0.5])
    chosen = select_key_frames(scores, np.arange(8), frames, k=3, min_gap=1)
    assert chosen == [0, 7, 2]
    assert 1 not in chosen and 5 not in chosen


def test_near_duplicates_look_inside_the_sector_only():
    from synthetic import synthetic_clip

    frames = synthetic_clip("b_lines", n_frames=4, size=64, seed=1, border=16)  # fan on a wide black surround
    frames[2] = np.clip(frames[0].astype(int) + 2, 0, 255).astype(np.uint8) * (frames[0] > 0)  # brighter copy
    dup = near_duplicates(frames)
    assert dup[0, 2] and dup[2, 0] and np.all(np.diag(dup))
    assert not dup[0, 1] and not dup[1, 3]  # new speckle: a different moment despite the shared layout


def test_selection_skips_repeated_source_frames_and_returns_fewer():
    frames = np.repeat(_distinct_frames(2), 4, axis=0)  # a 2-frame source sampled to 8
    indices = np.repeat(np.arange(2), 4)
    scores = np.linspace(1.0, 0.3, 8)
    chosen = select_key_frames(scores, indices, frames, k=4)
    assert sorted(indices[chosen].tolist()) == [0, 1]


def test_selection_relaxes_the_gap_before_giving_up():
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    chosen = select_key_frames(scores, np.arange(4), _distinct_frames(4), k=4, min_gap=3)
    assert chosen == [0, 3, 1, 2]


def test_selection_is_deterministic_on_ties():
    scores = np.full(10, 0.5)
    frames = _distinct_frames(10)
    first = select_key_frames(scores, np.arange(10), frames, k=3, min_gap=3)
    assert first == select_key_frames(scores, np.arange(10), frames, k=3, min_gap=3) == [0, 3, 6]


def test_frame_importance_combines_the_three_signals():
    t = 4
    expl = Explanation(
        clip=None, prediction=None, target="covid19",
        frame_scores=np.array([1.0, 0.5, 0.0, 0.5]),
        temporal_weights=np.array([0.4, 0.2, 0.2, 0.2]),
        saliency=np.array([2.0, 1.0, 0.0, 2.0]),
        heatmaps=np.zeros((t, 8, 8), np.float32), display_frames=np.zeros((t, 8, 8), np.uint8),
        method="test",
    )
    score, parts = frame_importance(expl)
    assert set(parts) == set(WEIGHTS)
    assert score[0] == pytest.approx(1.0)  # best on every signal
    assert score[2] == pytest.approx(WEIGHTS["attention"] * 0.5)
    assert score[3] == pytest.approx(0.5 * WEIGHTS["evidence"] + 0.5 * WEIGHTS["attention"] + WEIGHTS["saliency"])
    assert np.all((score >= 0) & (score <= 1))


@pytest.fixture(scope="module")
def clip_path(tmp_path_factory):
    from synthetic import synthetic_clip, write_video

    return write_video(tmp_path_factory.mktemp("explain") / "b.gif", synthetic_clip("b_lines", 16, 64, seed=2))


def _classifier(path, arch: str = "ctunet"):
    """A real (untrained) classifier of architecture ``arch`` saved as a checkpoint at ``path``."""
    from model_fixtures import make_tiny_checkpoint

    from models.checkpoint import CheckpointMeta, save_checkpoint
    from models.ctunet import build_model
    from models.inference import Classifier
    from models.video import InputSpec

    if arch == "ctunet":
        return Classifier(make_tiny_checkpoint(path, ["covid19", "bacterial_pneumonia", "normal"]))
    config = {"num_classes": 3, "num_frames": 8, "image_size": 64, "width": 4}
    spec = InputSpec(num_frames=8, image_size=64)
    meta = CheckpointMeta(name=f"tiny-{arch}", arch=arch, classes=["covid19", "bacterial_pneumonia", "normal"],
                          input_spec=spec.to_dict(), config=config)
    save_checkpoint(path, build_model(arch, config).eval(), meta)
    return Classifier(path)


def _check(expl, t: int = 8, s: int = 64) -> None:
    assert expl.frame_scores.shape == expl.temporal_weights.shape == expl.saliency.shape == (t,)
    assert expl.heatmaps.shape == expl.display_frames.shape == (t, s, s)
    assert expl.display_frames.dtype == np.uint8
    assert expl.heatmaps.min() >= 0 and expl.heatmaps.max() == pytest.approx(1.0)
    assert np.all((expl.frame_scores >= 0) & (expl.frame_scores <= 1))
    assert expl.temporal_weights.sum() == pytest.approx(1.0, abs=1e-5)
    assert len(expl.clip.indices) == t


def test_explain_ctunet_grad_cam(tmp_path, clip_path):
    from models.explain import explain_clip

    clf = _classifier(tmp_path / "c.pt")
    expl = explain_clip(clf, clip_path)
    _check(expl)
    assert expl.target == expl.prediction.label == clf.predict(clip_path).label
    assert expl.method == "grad-cam+frame-logits+temporal-attention"
    other = next(c for c in clf.classes if c != expl.target)
    alt = explain_clip(clf, clip_path, target=other)
    assert alt.target == other and not np.allclose(alt.frame_scores, expl.frame_scores)
    again = explain_clip(clf, clip_path)
    assert np.array_equal(again.heatmaps, expl.heatmaps) and np.array_equal(again.frame_scores, expl.frame_scores)
    assert not any(p.grad is not None for p in clf.model.parameters())  # explaining leaves no gradients


def test_explain_unknown_target_is_a_user_error(tmp_path, clip_path):
    from models.errors import UserError
    from models.explain import explain_clip

    with pytest.raises(UserError, match=r"b\.gif: unknown target class 'breast_benign'"):
        explain_clip(_classifier(tmp_path / "c.pt"), clip_path, target="breast_benign")


def test_explain_falls_back_without_cam_layer_or_aux(tmp_path, clip_path):
    """A 3-D CNN (no cam_layer) gets input-gradient saliency; a logits-only model gets saliency scores."""
    from torch import nn

    from models.explain import explain_clip

    clf = _classifier(tmp_path / "3d.pt", "cnn3d")
    expl = explain_clip(clf, clip_path)
    _check(expl)
    assert expl.method == "input-gradient+frame-logits+temporal-attention"

    class LogitsOnly(nn.Module):
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x)

    clf.model = LogitsOnly(clf.model).eval()
    expl = explain_clip(clf, clip_path)
    _check(expl)
    assert expl.method == "input-gradient"
    assert np.allclose(expl.temporal_weights, 1 / 8)
    assert np.allclose(expl.frame_scores, expl.saliency / expl.saliency.max())
