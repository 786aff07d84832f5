"""Data sets: manifests, class folders, grouped stratified folds, the decode cache and ClipDataset."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from synthetic import synthetic_clip, write_frame_folder, write_image, write_video

from models import data as data_mod
from models.data import (ClipCache, ClipDataset, ClipRecord, cached_frames, fold_warnings, grouped_stratified_kfold,
                         read_class_folders, read_manifest)
from models.errors import ManifestError, UserError, VideoError
from models.video import InputSpec, load_clip

SPEC = InputSpec(num_frames=4, image_size=32)


def write_manifest(path: Path, rows: list[str], header: str = "file,label,patient,probe") -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


@pytest.fixture
def clip_dir(tmp_path) -> Path:
    videos = tmp_path / "videos"
    videos.mkdir()
    write_video(videos / "a (1).mp4", synthetic_clip("a_lines", 10, 32, 0))
    write_video(videos / "b+1.gif", synthetic_clip("b_lines", 10, 32, 1))
    write_image(videos / "c.png", synthetic_clip("noise", 1, 32, 2)[0])
    return videos


def test_read_manifest_keeps_extras_and_reports_skipped_rows(tmp_path, clip_dir):
    csv = write_manifest(tmp_path / "m.csv", [
        "a (1).mp4,covid19,p1,convex",
        "b+1.gif,COVID-19,p2,linear",  # alias -> covid19
        "c.png,normal,,convex",  # no patient -> file stem
        "gone.mp4,normal,p3,convex",
        ",normal,p4,convex",
        "c.png,,p5,convex",
        "a (1).mp4,covid19,p1,convex",
    ])
    data = read_manifest(csv, clip_dir)
    assert [(r.path.name, r.label, r.patient) for r in data.records] == [
        ("a (1).mp4", "covid19", "p1"), ("b+1.gif", "covid19", "p2"), ("c.png", "normal", "c")]
    assert data.records[0].extra == {"probe": "convex"}
    assert data.label_counts() == {"covid19": 2, "normal": 1}
    reasons = dict(data.skipped)
    assert "file not found" in reasons["gone.mp4"]
    assert len(data.skipped) == 4 and any("duplicate" in r for _, r in data.skipped)


def test_read_manifest_class_filter_and_default_folder(tmp_path, clip_dir):
    csv = write_manifest(clip_dir / "manifest.csv", ["a (1).mp4,covid19,p1,x", "c.png,normal,p2,x"])
    data = read_manifest(csv, classes=["Normal lung"])
    assert [r.label for r in data.records] == ["normal"]
    assert data.skipped == [("a (1).mp4", "label 'covid19' not among the selected classes")]


@pytest.mark.parametrize("content, problem", [
    (None, "no such manifest file"),
    ("name,label\nx.mp4,covid19\n", r"missing column\(s\) file"),
    ("file,label\nnothere.mp4,covid19\n", "no usable rows"),
])
def test_read_manifest_errors(tmp_path, clip_dir, content, problem):
    csv = tmp_path / "bad.csv"
    if content is not None:
        csv.write_text(content)
    with pytest.raises(ManifestError, match=problem) as info:
        read_manifest(csv, clip_dir)
    assert str(info.value).startswith(f"{csv}: ")


def test_read_class_folders(tmp_path):
    root = tmp_path / "data"
    write_video(root / "covid19" / "x1.mp4", synthetic_clip("b_lines", 8, 32, 0))
    write_frame_folder(root / "covid19" / "case 7", synthetic_clip("b_lines", 5, 32, 1))
    write_image(root / "normal" / "n1.jpg", synthetic_clip("a_lines", 1, 32, 2)[0])
    (root / "normal" / "readme.txt").write_text("notes")
    (root / "normal" / ".DS_Store").write_bytes(b"\0")
    (root / "normal" / "empty folder").mkdir()
    (root / "manifest.csv").write_text("file,patient\ncovid19/x1.mp4,P9\n")
    data = read_class_folders(root)
    assert [(r.path.name, r.label, r.patient) for r in data.records] == [
        ("case 7", "covid19", "case 7"), ("x1.mp4", "covid19", "P9"), ("n1.jpg", "normal", "n1")]
    assert sorted(r for r, _ in data.skipped) == ["normal/empty folder", "normal/readme.txt"]
    assert [r.label for r in read_class_folders(root, classes=["covid19"]).records] == ["covid19"] * 2
    with pytest.raises(ManifestError, match="no such data folder"):
        read_class_folders(tmp_path / "nothing")


def test_read_class_folders_unreadable_manifest_is_one_line(tmp_path):
    root = tmp_path / "data"
    write_image(root / "covid19" / "x1.png", synthetic_clip("b_lines", 1, 32, 0)[0])
    (root / "manifest.csv").write_bytes(b"file,patient\ncovid19/x1.png,P\xe9\n")  # Latin-1, not UTF-8
    with pytest.raises(ManifestError, match="cannot read manifest") as info:
        read_class_folders(root)
    assert str(info.value).startswith(f"{root / 'manifest.csv'}: ")


def fake_records(per_class: dict[str, int], clips_per_patient: int = 2) -> list[ClipRecord]:
    out = []
    for label, n_patients in per_class.items():
        for p in range(n_patients):
            for c in range(clips_per_patient + p % 2):
                out.append(ClipRecord(Path(f"{label}_{p}_{c}.mp4"), label, f"{label}-{p}"))
    return out


def test_grouped_stratified_kfold_keeps_patients_together():
    records = fake_records({"covid19": 9, "normal": 12, "bacterial_pneumonia": 7})
    splits = grouped_stratified_kfold(records, 5, seed=3)
    assert len(splits) == 5
    seen_tests: list[int] = []
    for train, test in splits:
        assert not set(train) & set(test) and sorted(train + test) == list(range(len(records)))
        assert not {records[i].patient for i in train} & {records[i].patient for i in test}
        assert {records[i].label for i in test} == {"covid19", "normal", "bacterial_pneumonia"}
        seen_tests += test
    assert sorted(seen_tests) == list(range(len(records)))
    assert grouped_stratified_kfold(records, 5, seed=3) == splits
    assert grouped_stratified_kfold(records, 5, seed=4) != splits


def test_kfold_warns_about_rare_classes_and_rejects_too_few_patients():
    records = fake_records({"covid19": 8, "viral_pneumonia": 2})
    assert fold_warnings(records, 5) == [
        "class 'viral_pneumonia' has 2 patient(s), fewer than 5 folds: some folds lack it"]
    with pytest.warns(UserWarning, match="viral_pneumonia"):
        splits = grouped_stratified_kfold(records, 5, seed=0)
    assert len(splits) == 5
    with pytest.raises(ManifestError, match="cannot make 5 folds from 3 patient"):
        grouped_stratified_kfold(fake_records({"covid19": 3}), 5)


@pytest.mark.parametrize("name", ["a (1).mp4", "b+1.gif", "c.png"])
def test_cache_eval_frames_equal_load_clip(tmp_path, clip_dir, name):
    cache = ClipCache(SPEC, tmp_path / "cache")
    frames = cache.frames(clip_dir / name)
    assert frames.shape == (8, 32, 32) and frames.dtype == np.uint8
    record = ClipRecord(clip_dir / name, "covid19", "p")
    x, _ = ClipDataset([record], ["covid19"], SPEC, train=False, cache=cache)[0]
    expected, _ = load_clip(clip_dir / name, SPEC)
    assert torch.allclose(x, expected, atol=1e-5)


def test_cache_eval_frames_equal_load_clip_frame_folder(tmp_path):
    folder = write_frame_folder(tmp_path / "rawframes", synthetic_clip("b_lines", 13, 40, 5, border=6))
    x = ClipDataset([ClipRecord(folder, "covid19", "p")], ["covid19"], SPEC, False, cache=ClipCache(SPEC, tmp_path))[0][0]
    assert torch.allclose(x, load_clip(folder, SPEC)[0], atol=1e-5)


def test_cache_hits_do_not_decode(tmp_path, clip_dir, monkeypatch):
    cache = ClipCache(SPEC, tmp_path / "cache")
    first = cache.frames(clip_dir / "a (1).mp4")
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1

    def no_decode(*args, **kwargs):
        raise AssertionError("decoded despite a cache hit")

    monkeypatch.setattr(data_mod, "read_clip", no_decode)
    assert np.array_equal(cached_frames(clip_dir / "a (1).mp4", SPEC, tmp_path / "cache"), first)
    other = ClipCache(InputSpec(num_frames=4, image_size=24), tmp_path / "cache")
    assert other.key(clip_dir / "a (1).mp4") != cache.key(clip_dir / "a (1).mp4")
    with pytest.raises(AssertionError):  # another spec is another entry
        other.frames(clip_dir / "a (1).mp4")


def test_load_all_reports_bad_clips_and_goes_on(tmp_path, clip_dir):
    (clip_dir / "broken.mp4").write_text("not a video")
    records = [ClipRecord(clip_dir / n, "covid19", n) for n in ("a (1).mp4", "broken.mp4", "missing.avi", "c.png")]
    ok, frames, failed = ClipCache(SPEC, tmp_path / "cache").load_all(records)
    assert [r.path.name for r in ok] == ["a (1).mp4", "c.png"] and len(frames) == 2
    assert [Path(p).name for p, _ in failed] == ["broken.mp4", "missing.avi"]
    assert all(msg.startswith(p + ": ") for p, msg in failed)
    with pytest.raises(VideoError):
        ClipCache(SPEC, tmp_path / "cache").frames(clip_dir / "broken.mp4")


def test_unwritable_cache_is_one_clear_error_not_a_bad_clip(tmp_path, clip_dir):
    (tmp_path / "afile").write_text("x")
    cache = ClipCache(SPEC, tmp_path / "afile")  # the cache folder is a file
    with pytest.raises(UserError) as info:
        cache.load_all([ClipRecord(clip_dir / "c.png", "covid19", "p")])
    assert str(info.value).startswith(f"{tmp_path / 'afile'}: cannot write the clip cache (")
    assert "\n" not in str(info.value) and not isinstance(info.value, VideoError)


def test_clip_dataset_training_items(tmp_path, clip_dir):
    records = [ClipRecord(clip_dir / "a (1).mp4", "normal", "p1"), ClipRecord(clip_dir / "b+1.gif", "covid19", "p2")]
    cache = ClipCache(SPEC, tmp_path / "cache")
    ds = ClipDataset(records, ["covid19", "normal"], SPEC, train=True, cache=cache, seed=0)
    x, y = ds[0]
    assert x.shape == (4, 1, 32, 32) and x.dtype == torch.float32 and y == 1
    calls = []

    def augment(frames: np.ndarray) -> torch.Tensor:
        calls.append(frames.shape)
        return torch.zeros(4, 1, 32, 32)

    aug = ClipDataset(records, ["covid19", "normal"], SPEC, train=True, augment=augment, cache=cache)
    assert aug[1][1] == 0 and calls == [(8, 32, 32)]
    loader = torch.utils.data.DataLoader(ds, batch_size=2)
    xb, yb = next(iter(loader))
    assert xb.shape == (2, 4, 1, 32, 32) and yb.tolist() == [1, 0]
    with pytest.raises(ValueError, match="normal"):
        ClipDataset(records, ["covid19"], SPEC, train=False)


@pytest.mark.shared
def test_real_manifest_and_folds(pocus_dir):
    data = read_manifest(pocus_dir / "manifest.csv", pocus_dir / "videos",
                         classes=["covid19", "bacterial_pneumonia", "normal"])
    assert data.label_counts() == {"bacterial_pneumonia": 25, "covid19": 20, "normal": 41}
    assert len(data.skipped) == 4 and all("viral_pneumonia" in r for _, r in data.skipped)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        splits = grouped_stratified_kfold(data.records, 5, seed=0)
    for train, test in splits:
        assert not {data.records[i].patient for i in train} & {data.records[i].patient for i in test}
