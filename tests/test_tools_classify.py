"""classify_ultrasound_video through LangChain's interface: every input form, bad input, real clips."""
from __future__ import annotations

import asyncio
import csv
import json

import numpy as np
import pytest
from model_fixtures import make_tiny_checkpoint
from synthetic import synthetic_clip, write_frame_folder, write_image, write_video

import models.inference as inference
from models.checkpoint import DEFAULT_CHECKPOINT, read_meta
from models.classes import class_info
from tools.classify import ClassifyUltrasoundVideoTool

CLASSES = ["covid19", "bacterial_pneumonia", "normal"]
KEYS = {"path", "label", "label_name", "confidence", "probabilities", "abstained", "abstain_threshold", "checkpoint"}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt", CLASSES, abstain_threshold=0.9)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """One clip in each input form the loader reads."""
    d = tmp_path_factory.mktemp("clips")
    frames = synthetic_clip("b_lines", n_frames=12, size=64, seed=3)
    return {
        "mp4": write_video(d / "clip.mp4", frames),
        "gif": write_video(d / "clip.gif", frames),
        "folder": write_frame_folder(d / "frames", frames[:6], ext=".png"),
        "image": write_image(d / "still.png", frames[0]),
    }


def _check_result(result: dict, classes: list[str], checkpoint) -> None:
    assert set(result) == KEYS, result
    assert json.loads(json.dumps(result)) == result  # JSON-serialisable as is
    assert result["label"] in classes
    assert result["label_name"] == class_info(result["label"]).name
    assert list(result["probabilities"]) == classes
    assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
    assert result["confidence"] == max(result["probabilities"].values())
    assert result["abstained"] == (result["confidence"] < result["abstain_threshold"])
    meta = read_meta(checkpoint)
    assert result["checkpoint"] == {"id": meta.id, "name": meta.name, "classes": classes}


@pytest.mark.parametrize("form", ["mp4", "gif", "folder", "image"])
def test_classifies_every_input_form(ckpt, inputs, form):
    tool = ClassifyUltrasoundVideoTool(checkpoint=ckpt)
    result = tool.invoke({"video_path": str(inputs[form])})
    _check_result(result, CLASSES, ckpt)
    assert result["path"] == str(inputs[form])
    assert result["abstain_threshold"] == 0.9


def test_async_matches_sync(ckpt, inputs):
    tool = ClassifyUltrasoundVideoTool(checkpoint=ckpt)
    sync = tool.invoke({"video_path": str(inputs["mp4"])})
    assert asyncio.run(tool.ainvoke({"video_path": str(inputs["mp4"])})) == sync


def test_model_loads_once_per_process(tmp_path, inputs, monkeypatch):
    ckpt = make_tiny_checkpoint(tmp_path / "fresh.pt", CLASSES, seed=1)
    loads = []
    real = inference.load_checkpoint
    monkeypatch.setattr(inference, "load_checkpoint", lambda p: loads.append(p) or real(p))
    first = ClassifyUltrasoundVideoTool(checkpoint=ckpt)
    for tool in (first, first, ClassifyUltrasoundVideoTool(checkpoint=str(ckpt))):
        assert "error" not in tool.invoke({"video_path": str(inputs["gif"])})
    assert len(loads) == 1


def test_bad_input_is_an_error_result(ckpt, inputs, tmp_path):
    tool = ClassifyUltrasoundVideoTool(checkpoint=ckpt)
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x01 not a video" * 50)
    empty = tmp_path / "empty"
    empty.mkdir()
    for path in (tmp_path / "missing.mp4", corrupt, empty):
        result = tool.invoke({"video_path": str(path)})
        assert set(result) == {"error"}
        assert result["error"].startswith(str(path) + ": ") and "\n" not in result["error"]
    missing_ckpt = tmp_path / "nope.pt"
    result = ClassifyUltrasoundVideoTool(checkpoint=missing_ckpt).invoke({"video_path": str(inputs["mp4"])})
    assert result == {"error": f"{missing_ckpt}: checkpoint file does not exist"}
    assert tool.invoke({"path": "x.mp4"})["error"].startswith("invalid tool input: video_path: Field required")


def test_error_becomes_an_error_tool_message(ckpt, tmp_path):
    """Called with a tool call (as an agent does), a failure is a ToolMessage with status 'error'."""
    call = {"name": "classify_ultrasound_video", "args": {"video_path": str(tmp_path / "gone.mp4")},
            "id": "call-1", "type": "tool_call"}
    msg = ClassifyUltrasoundVideoTool(checkpoint=ckpt).invoke(call)
    assert msg.status == "error" and msg.tool_call_id == "call-1"
    assert json.loads(msg.content) == {"error": f"{tmp_path / 'gone.mp4'}: no such file or folder"}


@pytest.mark.shared
def test_real_clips_with_default_checkpoint(pocus_dir):
    with open(pocus_dir / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    picks = [next(r for r in rows if r["label"] == label) for label in ("covid19", "bacterial_pneumonia", "normal")]
    tool = ClassifyUltrasoundVideoTool()
    classes = read_meta(DEFAULT_CHECKPOINT).classes
    for row in picks:
        result = tool.invoke({"video_path": str(pocus_dir / "videos" / row["file"])})
        _check_result(result, classes, DEFAULT_CHECKPOINT)
        assert np.isfinite(result["confidence"])
