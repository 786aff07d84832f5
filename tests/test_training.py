"""Training learns a small synthetic task, is deterministic, and CV/metrics/augmentation behave."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from synthetic import synthetic_clip, write_video

from models.augment import AugmentConfig, augment_clip, eval_frames, temporal_jitter
from models.ctunet import CTUNet, CTUNetConfig
from models.data import ClipCache, ClipRecord, grouped_stratified_kfold
from models.errors import UserError
from models.metrics import choose_abstain_threshold, classification_metrics, plot_confusion, summarize_folds
from models.training import TrainConfig, cross_validate, predict_probabilities, train
from models.video import InputSpec, load_clip

SPEC = InputSpec(num_frames=8, image_size=48)
KINDS = ["a_lines", "b_lines"]


def build(num_classes: int, spec: InputSpec) -> CTUNet:
    return CTUNet(CTUNetConfig(num_classes=num_classes, num_frames=spec.num_frames, image_size=spec.image_size,
                               width=8, embed_dim=32, heads=2, depth=1))


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """24 training and 12 held-out mp4 clips (a_lines vs b_lines), decoded once through the cache."""
    root = tmp_path_factory.mktemp("synth")
    records = []
    for i in range(18):
        for j, kind in enumerate(KINDS):
            path = write_video(root / f"{kind}_{i}.mp4", synthetic_clip(kind, n_frames=16, size=56, seed=100 * i + j))
            records.append(ClipRecord(path, kind, f"p{i}"))
    cache = ClipCache(SPEC, root / "cache")
    frames = {r.path: cache.frames(r) for r in records}
    return records[:24], records[24:], lambda r: frames[r.path]


def test_short_training_learns_synthetic_task(clips):
    train_recs, test_recs, frames_fn = clips
    model = train(build, train_recs, KINDS, SPEC, frames_fn, TrainConfig(epochs=6, batch_size=4, lr=3e-3))
    probs = predict_probabilities(model, test_recs, SPEC, frames_fn)
    m = classification_metrics([r.label for r in test_recs], probs.argmax(1).tolist(), KINDS)
    assert m["accuracy"] >= 0.75, m  # chance is 0.5
    # the cache's evaluation frames are exactly what inference feeds the model
    x, _ = load_clip(test_recs[0].path, SPEC)
    with torch.no_grad():
        direct = torch.softmax(model(x[None]), -1)[0].numpy()
    assert np.allclose(direct, probs[0], atol=1e-5)


def test_training_is_deterministic_under_a_seed(clips):
    train_recs, _, frames_fn = clips
    cfg = TrainConfig(epochs=1, batch_size=4, seed=3)
    a = train(build, train_recs[:8], KINDS, SPEC, frames_fn, cfg).state_dict()
    b = train(build, train_recs[:8], KINDS, SPEC, frames_fn, cfg).state_dict()
    c = train(build, train_recs[:8], KINDS, SPEC, frames_fn, TrainConfig(epochs=1, batch_size=4, seed=4)).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_missing_class_is_an_error(clips):
    train_recs, _, frames_fn = clips
    only_a = [r for r in train_recs if r.label == "a_lines"]
    with pytest.raises(ValueError, match="no training clips for class"):
        train(build, only_a, KINDS, SPEC, frames_fn, TrainConfig(epochs=1))


def test_cross_validation_structure(clips):
    train_recs, _, frames_fn = clips
    train_recs = train_recs[:8]
    splits = grouped_stratified_kfold(train_recs, 2, seed=0)
    epochs_seen = []
    result = cross_validate(build, train_recs, KINDS, SPEC, frames_fn, splits,
                            TrainConfig(epochs=1, batch_size=4, class_weighting="loss"),
                            on_fold=lambda k, n: lambda e, total, loss, acc: epochs_seen.append((k, e)))
    assert epochs_seen == [(0, 1), (1, 1)]
    assert len(result.folds) == 2 and result.summary["folds"] == 2
    assert result.oof_probabilities.shape == (8, 2)
    assert np.allclose(result.oof_probabilities.sum(1), 1, atol=1e-5)  # every clip held out once
    assert result.pooled["n"] == 8 and 0 <= result.abstain["threshold"] <= 1
    for name in ("accuracy", "balanced_accuracy", "macro_f1"):
        assert set(result.summary[name]) == {"mean", "std"}


def test_augmentation_is_seeded_and_shaped():
    cached = synthetic_clip("b_lines", n_frames=16, size=48, seed=1)
    a = augment_clip(cached, SPEC, np.random.default_rng(0))
    b = augment_clip(cached, SPEC, np.random.default_rng(0))
    c = augment_clip(cached, SPEC, np.random.default_rng(1))
    assert a.shape == (8, 1, 48, 48) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert abs(float(a.mean())) < 1e-3 and abs(float(a.std()) - 1) < 0.05  # per-clip z-score
    off = augment_clip(cached, SPEC, np.random.default_rng(0),
                       AugmentConfig(rotate_deg=0, scale=0, translate=0, flip_p=0, gain=0, gamma=0, speckle=0))
    assert off.shape == a.shape
    assert np.array_equal(eval_frames(cached, 8), cached[::2])


def test_temporal_jitter_takes_cached_frames():
    cached = np.arange(16, dtype=np.uint8)[:, None, None] * np.ones((1, 4, 4), np.uint8)
    rng = np.random.default_rng(0)
    for _ in range(20):
        picked = temporal_jitter(cached, 8, rng)[:, 0, 0]
        steps = np.diff(picked.astype(int))
        assert len(picked) == 8 and (np.all(steps == 1) or np.all(steps == 2))


def test_metrics_known_values(tmp_path):
    classes = ["a", "b", "c"]
    m = classification_metrics(["a", "a", "b", "b", "c", "c"], ["a", "b", "b", "b", "c", "a"], classes)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["balanced_accuracy"] == pytest.approx((0.5 + 1 + 0.5) / 3)
    assert m["per_class"]["b"] == {"precision": pytest.approx(2 / 3), "recall": 1.0, "f1": pytest.approx(0.8),
                                   "support": 2}
    assert m["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]] and m["n"] == 6
    s = summarize_folds([m, classification_metrics(["a", "b"], ["a", "b"], classes)], classes)
    assert s["accuracy"]["mean"] == pytest.approx((4 / 6 + 1) / 2)
    assert s["per_class"]["c"]["recall"] == {"mean": 0.5, "std": 0.0}  # only the fold that has c
    png = plot_confusion(m["confusion"], classes, tmp_path / "cm.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    import matplotlib.pyplot as plt

    open_figures = len(plt.get_fignums())
    (tmp_path / "afile").write_text("x")
    with pytest.raises(UserError, match="cannot write the confusion-matrix PNG") as err:
        plot_confusion(m["confusion"], classes, tmp_path / "afile" / "cm.png")  # its folder is a file
    assert str(err.value).startswith(f"{tmp_path / 'afile' / 'cm.png'}: ")
    assert len(plt.get_fignums()) == open_figures  # the figure is closed on failure too


def test_abstain_threshold_from_confidences():
    conf = [0.95, 0.9, 0.8, 0.7, 0.6, 0.5]
    ok = [True, True, True, False, True, False]
    a = choose_abstain_threshold(conf, ok, target=0.9)
    assert a == {"threshold": 0.8, "coverage": 0.5, "selective_accuracy": 1.0}
    b = choose_abstain_threshold(conf, ok, target=0.75)
    assert b["threshold"] == 0.6 and b["selective_accuracy"] == pytest.approx(0.8)
    c = choose_abstain_threshold(conf, [False] * 6, target=0.9, min_coverage=0.5)
    assert c["coverage"] == 0.5  # target unreachable: keep the most confident half
