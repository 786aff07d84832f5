"""retrieve_key_frames through LangChain's interface: files, determinism, spread, bad input, real clips."""
from __future__ import annotations

import asyncio
import csv
import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from model_fixtures import make_tiny_checkpoint
from PIL import Image
from synthetic import synthetic_clip, write_image, write_video

from models.explain import near_duplicates
from tools.key_frames import DISPLAY, RetrieveKeyFramesTool, contact_sheet, heat_overlay

FRAME_KEYS = {"rank", "index", "time_s", "score", "reason", "frame_path", "overlay_path"}


@pytest.fixture(scope="module")
def tool(tmp_path_factory):
    ckpt = make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "kf.pt", ["covid19", "normal"], num_frames=12)
    return RetrieveKeyFramesTool(checkpoint=ckpt)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("clip") / "lung.mp4",
                       synthetic_clip("b_lines", n_frames=24, size=80, seed=5), fps=12)


def _check_files(result: dict, k: int) -> None:
    assert json.loads(json.dumps(result)) == result
    assert {"path", "target_label", "method", "frames", "contact_sheet"} <= set(result)
    frames = result["frames"]
    assert [f["rank"] for f in frames] == list(range(1, len(frames) + 1)) and 1 <= len(frames) <= k
    for f in frames:
        assert set(f) == FRAME_KEYS and f["reason"]
        assert 0.0 <= f["score"] <= 1.0
        with Image.open(f["frame_path"]) as im:
            assert im.size == (DISPLAY, DISPLAY) and im.mode == "L"
        with Image.open(f["overlay_path"]) as im:
            assert im.size == (DISPLAY, DISPLAY) and im.mode == "RGB"
    assert [f["score"] for f in frames] == sorted((f["score"] for f in frames), reverse=True)
    with Image.open(result["contact_sheet"]) as sheet:
        assert sheet.width >= min(len(frames), 4) * DISPLAY and sheet.height > DISPLAY


def test_key_frames_on_a_generated_clip(tool, clip, tmp_path):
    result = tool.invoke({"video_path": str(clip), "k": 4, "out_dir": str(tmp_path / "kf")})
    _check_files(result, 4)
    frames = result["frames"]
    assert len(frames) == 4 and result["target_label"] in ("covid19", "normal")
    indices = [f["index"] for f in frames]
    assert len(set(indices)) == 4 and all(0 <= i < 24 for i in indices)
    assert all(f["time_s"] == pytest.approx(f["index"] / 12, abs=1e-3) for f in frames)
    assert all(Path(f["frame_path"]).parent == tmp_path / "kf" for f in frames)
    assert "grad-cam" in result["method"] and "note" not in result


def test_no_near_duplicates_are_selected(tool, clip, tmp_path):
    result = tool.invoke({"video_path": str(clip), "k": 6, "out_dir": str(tmp_path)})
    shown = np.stack([np.asarray(Image.open(f["frame_path"])) for f in result["frames"]])
    assert len(shown) == 6
    assert not near_duplicates(shown)[~np.eye(len(shown), dtype=bool)].any()


def test_still_image_gives_one_frame_and_says_why(tool, tmp_path):
    still = write_image(tmp_path / "still.png", synthetic_clip("a_lines", n_frames=1, size=64)[0])
    result = tool.invoke({"video_path": str(still), "k": 3, "out_dir": str(tmp_path / "out")})
    _check_files(result, 3)
    assert len(result["frames"]) == 1 and result["frames"][0]["time_s"] is None
    assert "only 1 distinct frames" in result["note"]


def test_deterministic_files_and_numbers(tool, clip, tmp_path):
    a = tool.invoke({"video_path": str(clip), "k": 3, "out_dir": str(tmp_path / "a")})
    b = asyncio.run(tool.ainvoke({"video_path": str(clip), "k": 3, "out_dir": str(tmp_path / "b")}))

    def strip(r: dict) -> dict:
        return {**r, "contact_sheet": Path(r["contact_sheet"]).name,
                "frames": [{**f, "frame_path": Path(f["frame_path"]).name,
                            "overlay_path": Path(f["overlay_path"]).name} for f in r["frames"]]}

    assert strip(a) == strip(b)
    for name in [p.name for p in (tmp_path / "a").iterdir()]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_default_and_configured_output_folders(tool, clip, tmp_path):
    result = tool.invoke({"video_path": str(clip), "k": 1})
    folder = Path(result["contact_sheet"]).parent
    assert folder.parent == Path(tempfile.gettempdir()) / "autous" / "key_frames"
    assert folder.name.startswith("lung-")
    configured = RetrieveKeyFramesTool(checkpoint=tool.checkpoint, out_dir=tmp_path / "reports")
    result = configured.invoke({"video_path": str(clip), "k": 1})
    assert Path(result["contact_sheet"]).parent == tmp_path / "reports"


def test_bad_input_is_an_error_result(tool, clip, tmp_path):
    for k in (0, 17):
        result = tool.invoke({"video_path": str(clip), "k": k})
        assert set(result) == {"error"} and result["error"].startswith("invalid tool input: k: ")
    missing = tmp_path / "missing.gif"
    assert tool.invoke({"video_path": str(missing)}) == {"error": f"{missing}: no such file or folder"}
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    result = tool.invoke({"video_path": str(clip), "out_dir": str(blocker / "sub")})
    assert result["error"].startswith(f"{blocker / 'sub'}: cannot create the output folder")


def test_overlay_colours_only_where_the_heat_is():
    frame = np.full((DISPLAY, DISPLAY), 100, np.uint8)
    heat = np.zeros((16, 16), np.float32)
    heat[:4, :4] = 1.0
    out = heat_overlay(frame, heat)
    assert out.shape == (DISPLAY, DISPLAY, 3) and out.dtype == np.uint8
    assert np.all(out[-40:, -40:] == 100)  # cold: the plain grey frame
    corner = out[:20, :20].astype(int)
    assert np.all(corner[..., 0] > corner[..., 1] + 50) and np.all(corner[..., 0] > corner[..., 2] + 50)  # jet: red


def test_contact_sheet_grid():
    tiles = [(np.full((DISPLAY, DISPLAY, 3), 40 * i, np.uint8), f"#{i}\nscore 0.5") for i in range(1, 6)]
    sheet = contact_sheet(tiles, "title")
    assert sheet.mode == "RGB" and sheet.width > 4 * DISPLAY and sheet.height > 2 * DISPLAY
    px = np.asarray(sheet)
    assert (px == 40).all(axis=-1).any() and (px == 200).all(axis=-1).any()  # first and fifth tiles drawn


@pytest.mark.shared
def test_real_clips_with_default_checkpoint(pocus_dir, tmp_path):
    with open(pocus_dir / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    tool = RetrieveKeyFramesTool()
    for row in (rows[0], next(r for r in rows if r["label"] == "normal")):
        result = tool.invoke({"video_path": str(pocus_dir / "videos" / row["file"]), "k": 4,
                              "out_dir": str(tmp_path / row["file"])})
        _check_files(result, 4)
        assert len(result["frames"]) == 4, result
        assert len({f["index"] for f in result["frames"]}) == 4
        assert all(0 <= f["index"] < int(row["frames"]) for f in result["frames"])
