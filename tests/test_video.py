"""Video input: every input form, sampling, sector crop, preprocessing and every bad input."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from synthetic import (synthetic_clip, write_frame_folder, write_image, write_truncated, write_video,
                       write_zero_frame_video)

from models.errors import UserError, VideoError
from models.video import (MAX_SIDE, InputSpec, crop_resize, load_clip, preprocess, read_clip, sample_indices,
                          sector_box)


def level_clip(n: int, size: int = 32) -> np.ndarray:
    """Frame i is flat grey at level 8 + 2*i: the decoded value tells which frame it was."""
    return np.stack([np.full((size, size), 8 + 2 * i, np.uint8) for i in range(n)])


def frame_number(frame: np.ndarray) -> int:
    return round((float(frame.mean()) - 8) / 2)


@pytest.mark.parametrize("ext", [".mp4", ".avi", ".mov", ".mpeg", ".m4v", ".gif"])
def test_video_files_read_grayscale_uniform_samples(tmp_path, ext):
    src = synthetic_clip("b_lines", n_frames=20, size=48, seed=1)
    path = write_video(tmp_path / f"clip{ext}", src)
    clip = read_clip(path, 8)
    assert clip.kind == "video" and clip.frames.dtype == np.uint8
    assert clip.frames.shape[0] == 8 and clip.frames.ndim == 3
    assert clip.total_frames == 20
    assert clip.indices.tolist() == sample_indices(20, 8).tolist() == [0, 2, 5, 7, 10, 12, 15, 17]
    assert clip.fps > 0 and np.allclose(clip.times_s, clip.indices / clip.fps)
    h, w = clip.source_size
    decoded = clip.frames[:, :48, :48].astype(float)
    expected = src[clip.indices].astype(float)
    # lossy codecs (and GIF's 256-colour palette) change pixels, not the picture
    assert np.corrcoef(decoded.ravel(), expected.ravel())[0, 1] > 0.9


@pytest.mark.parametrize("ext", [".mp4", ".avi", ".mpeg"])
def test_long_clip_samples_the_right_frames(tmp_path, ext):
    path = write_video(tmp_path / f"long{ext}", level_clip(120))
    clip = read_clip(path, 6)
    assert clip.total_frames == 120
    assert clip.indices.tolist() == [0, 20, 40, 60, 80, 100]
    assert [frame_number(f) for f in clip.frames] == clip.indices.tolist()


def test_one_frame_video_repeats_to_t(tmp_path):
    clip = read_clip(write_video(tmp_path / "one.mp4", level_clip(1)), 5)
    assert clip.total_frames == 1 and clip.indices.tolist() == [0] * 5 and clip.frames.shape[0] == 5


def test_frame_folder_natural_order(tmp_path):
    frames = level_clip(12)
    for i, frame in enumerate(frames, start=1):  # unpadded names: img_2 must come before img_10
        write_image(tmp_path / "rawframes" / f"img_{i}.png", frame)
    (tmp_path / "rawframes" / "notes.txt").write_text("not a frame")
    clip = read_clip(tmp_path / "rawframes", 4)
    assert clip.kind == "frames" and clip.total_frames == 12 and clip.fps == 0.0
    assert clip.indices.tolist() == [0, 3, 6, 9]
    assert [frame_number(f) for f in clip.frames] == [0, 3, 6, 9]
    assert np.isnan(clip.times_s).all()


def test_jpeg_frame_folder(tmp_path):
    folder = write_frame_folder(tmp_path / "case 1", synthetic_clip("a_lines", 6, 40, 0))
    clip = read_clip(folder, 8)
    assert clip.frames.shape == (8, 40, 40) and clip.total_frames == 6


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".tif"])
def test_still_image_is_a_one_frame_clip(tmp_path, ext):
    rgb = np.stack([synthetic_clip("a_lines", 1, 40, 2)[0]] * 3, axis=-1)
    clip = read_clip(write_image(tmp_path / f"still{ext}", rgb), 6)
    assert clip.kind == "image" and clip.total_frames == 1
    assert clip.frames.shape == (6, 40, 40)
    assert (clip.frames == clip.frames[0]).all()


def test_awkward_file_names(tmp_path):
    path = write_video(tmp_path / "Cov atlas +(44) copy.mp4", synthetic_clip("a_lines", 6, 32, 0))
    assert read_clip(path, 4).frames.shape == (4, 32, 32)


def test_huge_resolution_is_capped_on_read(tmp_path):
    wide = np.zeros((3, 64, 2400), np.uint8)
    wide[:, 16:48] = 120
    clip = read_clip(write_video(tmp_path / "wide.mp4", wide), 3)
    assert clip.source_size == (64, 2400)
    assert max(clip.frames.shape[1:]) <= MAX_SIDE
    big = read_clip(write_image(tmp_path / "big.png", np.full((3000, 1500), 90, np.uint8)), 2)
    assert big.source_size == (3000, 1500) and big.frames.shape == (2, MAX_SIDE, MAX_SIDE // 2)


def bad_inputs(tmp: Path) -> dict[str, tuple[Path, str]]:
    """Each bad input with a word its error message must contain."""
    good = write_video(tmp / "good.mp4", synthetic_clip("b_lines", 12, 32, 0))
    good_avi = write_video(tmp / "good.avi", synthetic_clip("b_lines", 12, 32, 0))
    (tmp / "zero.mp4").write_bytes(b"")
    (tmp / "notes.mp4").write_text("this is a text file, not a video\n")
    (tmp / "clip.xyz").write_bytes(b"data")
    (tmp / "no frames").mkdir()
    (tmp / "no frames" / "readme.txt").write_text("x")
    return {
        "missing": (tmp / "missing.mp4", "no such file"),
        "zero-byte": (tmp / "zero.mp4", "empty file"),
        "truncated mp4": (write_truncated(good, tmp / "trunc.mp4"), "cannot decode"),
        "truncated avi": (write_truncated(good_avi, tmp / "trunc.avi"), "truncated"),
        "text renamed": (tmp / "notes.mp4", "not a video"),
        "zero-frame mp4": (write_zero_frame_video(tmp / "empty.mp4"), "no video frames"),
        "zero-frame avi": (write_zero_frame_video(tmp / "empty.avi"), "no video frames"),
        "unknown extension": (tmp / "clip.xyz", "unsupported file type"),
        "frames folder without images": (tmp / "no frames", "no frame images"),
    }


def test_every_bad_input_is_one_clear_line(tmp_path):
    for what, (path, word) in bad_inputs(tmp_path).items():
        with pytest.raises(VideoError) as info:
            read_clip(path, 8)
        message = str(info.value)
        assert isinstance(info.value, UserError), what
        assert message.startswith(f"{path}: "), (what, message)
        assert word in message and "\n" not in message, (what, message)


def test_unreadable_frame_folder_is_one_clear_line(tmp_path, monkeypatch):
    folder = tmp_path / "locked"
    folder.mkdir()
    real_iterdir = Path.iterdir

    def iterdir(self):
        if self == folder:
            raise PermissionError(13, "Permission denied", str(self))
        return real_iterdir(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    with pytest.raises(VideoError, match="cannot read folder") as info:
        read_clip(folder, 8)
    assert str(info.value) == f"{folder}: cannot read folder (Permission denied)"


def test_sector_box_drops_black_borders_and_static_marker():
    frames = synthetic_clip("b_lines", 10, 64, seed=3, border=24)  # 64 x 112, marker top-left
    y0, y1, x0, x1 = sector_box(frames)
    assert x0 >= 20 and x1 <= 92  # the borders (and the marker in them) are outside
    assert y1 - y0 >= 40 and x1 - x0 >= 40  # the fan is inside
    still = sector_box(frames[:1])  # no motion to go by: brightness decides
    assert still[2] >= 20 and still[3] <= 92


@pytest.mark.parametrize("frames", [np.zeros((4, 40, 40), np.uint8), np.full((1, 40, 40), 255, np.uint8),
                                    np.zeros((2, 40, 40), np.uint8) + np.eye(40, dtype=np.uint8) * 200])
def test_sector_box_never_empty(frames):
    y0, y1, x0, x1 = sector_box(frames)
    assert 0 <= y0 < y1 <= 40 and 0 <= x0 < x1 <= 40
    assert (y1 - y0) * (x1 - x0) >= 0.1 * 40 * 40


def test_preprocess_shapes_padding_and_normalisation():
    frames = np.full((6, 30, 60), 100, np.uint8)
    frames[:, :, ::3] = 200
    spec = InputSpec(num_frames=6, image_size=32, crop_sector=False)
    small = crop_resize(frames, spec)
    assert small.shape == (6, 32, 32) and small.dtype == np.uint8
    assert (small[:, :8] == 0).all() and (small[:, 24:] == 0).all() and small[:, 8:24].min() > 0
    x = preprocess(frames, spec)
    assert x.shape == (6, 1, 32, 32) and x.dtype == torch.float32
    assert abs(float(x.mean())) < 1e-4 and abs(float(x.std(unbiased=False)) - 1) < 1e-3
    flat = preprocess(np.full((2, 8, 8), 50, np.uint8), InputSpec(2, 16, False))
    assert torch.isfinite(flat).all() and float(flat.abs().max()) <= 50  # std floor: no blow-up
    raw = preprocess(frames, InputSpec(6, 32, False, "none"))
    assert float(raw.min()) >= 0 and float(raw.max()) <= 1


def test_input_spec_round_trip_and_bad_values():
    spec = InputSpec(num_frames=8, image_size=64, crop_sector=False)
    assert InputSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError):
        InputSpec.from_dict({**spec.to_dict(), "colour": True})
    with pytest.raises(ValueError):
        InputSpec(normalization="minmax")


def test_load_clip(tmp_path):
    path = write_video(tmp_path / "c.mp4", synthetic_clip("a_lines", 10, (48, 64), 0, border=8))
    x, clip = load_clip(path, InputSpec(num_frames=4, image_size=32))
    assert x.shape == (4, 1, 32, 32) and clip.frames.shape[0] == 4
    assert torch.equal(x, preprocess(clip.frames, InputSpec(num_frames=4, image_size=32)))


@pytest.mark.shared
@pytest.mark.parametrize("ext", [".mp4", ".mov", ".gif", ".avi", ".mpeg"])
def test_real_clips(pocus_dir, ext):
    with open(pocus_dir / "manifest.csv", newline="") as fh:
        row = next(r for r in csv.DictReader(fh) if r["file"].lower().endswith(ext))
    clip = read_clip(pocus_dir / "videos" / row["file"], 16)
    assert clip.frames.shape[0] == 16 and clip.frames.std() > 5
    assert abs(clip.total_frames - int(row["frames"])) <= 3
    y0, y1, x0, x1 = sector_box(clip.frames)
    assert (y1 - y0) * (x1 - x0) >= 0.1 * clip.frames.shape[1] * clip.frames.shape[2]
    assert preprocess(clip.frames, InputSpec()).shape == (16, 1, 112, 112)
