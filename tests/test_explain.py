"""models.explain: key-frame scoring and selection on arrays, Grad-CAM explanations on real models."""
from __future__ import annotations

import numpy as np
import pytest

from models.explain import WEIGHTS, Explanation, frame_importance, select_key_frames


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
