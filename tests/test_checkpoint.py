"""Checkpoint round trip, metadata, every broken-checkpoint case, and the Classifier."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from model_fixtures import make_tiny_checkpoint
from synthetic import synthetic_clip, write_video

from models.checkpoint import CheckpointMeta, load_checkpoint, read_meta, save_checkpoint
from models.ctunet import CTUNet, CTUNetConfig
from models.errors import CheckpointError
from models.inference import Classifier, get_classifier

CLASSES = ["covid19", "bacterial_pneumonia", "normal"]


def test_round_trip_keeps_weights_and_metadata(tmp_path):
    path = make_tiny_checkpoint(tmp_path / "m.pt", CLASSES, abstain_threshold=0.6)
    payload = torch.load(path, weights_only=True)  # plain tensors and strings only
    assert payload["format"] == "autous-checkpoint"
    model, meta = load_checkpoint(path)
    assert meta.classes == CLASSES and meta.arch == "ctunet" and meta.abstain_threshold == 0.6
    assert meta.input_spec["num_frames"] == 8 and len(meta.id) == 12 and meta.created
    x = torch.randn(1, 8, 1, 64, 64)
    again = tmp_path / "again.pt"
    meta2 = save_checkpoint(again, model, meta)
    model2, _ = load_checkpoint(again)
    assert meta2.id == meta.id
    with torch.no_grad():
        assert torch.equal(model(x), model2(x))
    assert not model2.training


def test_unwritable_checkpoint_path_is_one_line_error(tmp_path, monkeypatch):
    model, meta = load_checkpoint(make_tiny_checkpoint(tmp_path / "m.pt", CLASSES))
    (tmp_path / "afile").write_text("x")
    target = tmp_path / "afile" / "out.pt"  # its folder is a file
    with pytest.raises(CheckpointError) as err:
        save_checkpoint(target, model, meta)
    assert str(err.value).startswith(f"{target}: cannot write checkpoint (") and "\n" not in str(err.value)

    def cannot_open(obj, f, *args, **kwargs):  # what torch.save raises for a file it cannot open
        open(f, "wb").close()
        raise RuntimeError(f"File {f} cannot be opened.")

    monkeypatch.setattr(torch, "save", cannot_open)
    with pytest.raises(CheckpointError, match=r"out\.pt: cannot write checkpoint \(File .* cannot be opened\.\)"):
        save_checkpoint(tmp_path / "out.pt", model, meta)
    assert not (tmp_path / "out.pt.tmp").exists() and not (tmp_path / "out.pt").exists()


def test_missing_and_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match=r"nope\.pt: checkpoint file does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match=r"notes\.pt: not a readable PyTorch checkpoint"):
        load_checkpoint(text)
    plain = tmp_path / "plain.pt"
    torch.save({"weight": torch.zeros(2)}, plain)
    with pytest.raises(CheckpointError, match=r"plain\.pt: not an Auto-US checkpoint"):
        load_checkpoint(plain)
    with pytest.raises(CheckpointError, match="is not a file"):
        load_checkpoint(tmp_path)


def test_checkpoint_from_another_config(tmp_path):
    path = make_tiny_checkpoint(tmp_path / "m.pt", CLASSES)
    payload = torch.load(path, weights_only=True)
    meta = CheckpointMeta.model_validate_json(payload["meta"])
    wider = meta.model_copy(update={"config": {**meta.config, "width": 12}})
    payload["meta"] = wider.model_dump_json()
    torch.save(payload, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match=r"other\.pt: weights do not match .* shape mismatches"):
        load_checkpoint(tmp_path / "other.pt")
    dropped = meta.model_copy(update={"config": {**meta.config, "paths": ["spatial"]}})
    payload["meta"] = dropped.model_dump_json()
    torch.save(payload, tmp_path / "fewer.pt")
    with pytest.raises(CheckpointError, match="unexpected tensors"):
        load_checkpoint(tmp_path / "fewer.pt")
    payload["meta"] = meta.model_copy(update={"config": {**meta.config, "colour": 1}}).model_dump_json()
    torch.save(payload, tmp_path / "keys.pt")
    with pytest.raises(CheckpointError, match="cannot build architecture 'ctunet'.*colour"):
        load_checkpoint(tmp_path / "keys.pt")
    payload["meta"] = meta.model_copy(update={"classes": ["a", "b"]}).model_dump_json()
    torch.save(payload, tmp_path / "classes.pt")
    with pytest.raises(CheckpointError, match="num_classes=3 but 2 class names"):
        load_checkpoint(tmp_path / "classes.pt")
    payload["meta"] = "{}"
    torch.save(payload, tmp_path / "meta.pt")
    with pytest.raises(CheckpointError, match="invalid checkpoint metadata"):
        read_meta(tmp_path / "meta.pt")


def test_truncated_checkpoint(tmp_path):
    path = make_tiny_checkpoint(tmp_path / "m.pt", CLASSES)
    data = path.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.pt: not a readable PyTorch checkpoint"):
        load_checkpoint(tmp_path / "cut.pt")


def test_rewritten_checkpoint_replaces_the_cached_classifier(tmp_path):
    import os

    from models import inference

    path = make_tiny_checkpoint(tmp_path / "m.pt", CLASSES)
    old = get_classifier(path)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # as if written again
    new = get_classifier(path)
    assert new is not old and get_classifier(path) is new
    assert [k for k in inference._CACHE if k[0] == str(path.resolve())] == [(str(path.resolve()), path.stat().st_mtime_ns)]


def test_classifier_predicts_a_generated_clip_and_is_cached(tmp_path):
    path = make_tiny_checkpoint(tmp_path / "m.pt", CLASSES, abstain_threshold=0.99)
    clip = write_video(tmp_path / "a clip (1)+.mp4", synthetic_clip("b_lines", n_frames=12, size=64))
    clf = get_classifier(path)
    assert get_classifier(str(path)) is clf
    pred = clf.predict(clip)
    d = pred.to_dict()
    assert set(d) == {"path", "label", "confidence", "probabilities", "abstained"}
    assert d["label"] in CLASSES and d["path"] == str(clip)
    assert abs(sum(d["probabilities"].values()) - 1) < 1e-4
    assert d["confidence"] == pytest.approx(max(d["probabilities"].values()), abs=1e-5)
    assert d["abstained"] is True  # a random 3-class model is never 99% sure
    x = torch.from_numpy(np.zeros((8, 1, 64, 64), np.float32))
    assert clf.predict_tensor(x).label in CLASSES
    assert isinstance(Classifier(path).spec.num_frames, int)


def test_wrong_input_spec(tmp_path):
    path = make_tiny_checkpoint(tmp_path / "m.pt", CLASSES)
    model, meta = load_checkpoint(path)
    bad = meta.model_copy(update={"input_spec": {**meta.input_spec, "normalization": "magic"}})
    save_checkpoint(tmp_path / "spec.pt", model, bad)
    with pytest.raises(CheckpointError, match=r"spec\.pt: invalid input spec"):
        Classifier(tmp_path / "spec.pt")


def test_untrained_model_builds_from_config():
    model = CTUNet(CTUNetConfig(num_classes=2, num_frames=8, image_size=64, width=8, embed_dim=32))
    assert model(torch.zeros(1, 8, 1, 64, 64)).shape == (1, 2)
