"""LangChain tool ``retrieve_key_frames``: the frames a clinician should look at, with reasons.

Frames are ranked by the evidence the classifier's prediction leans on (frame-level class
evidence, temporal attention, Grad-CAM mass; see ``models.explain``) and picked greedily with
near-duplicate suppression. Each is written as a PNG, with a Grad-CAM overlay, plus one
contact sheet of all overlays.
"""
from __future__ import annotations

import hashlib
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field
from PIL import Image, ImageDraw, ImageFont

from models.classes import class_info
from models.errors import UserError
from tools.classify import ClipTool, guarded

DISPLAY = 224  # side of the written frames and overlays, pixels
MAX_K = 16
PNG_LEVEL = 1  # zlib level: 3x faster than the default 6 for ~15% larger files
_CAPTION = 34


class KeyFramesInput(BaseModel):
    video_path: str = Field(description="Path to the ultrasound clip (video file, GIF, frame folder or image).")
    k: int = Field(default=4, ge=1, le=MAX_K, description=f"How many key frames to return (1..{MAX_K}).")
    out_dir: str | None = Field(
        default=None, description="Folder for the PNG files; default: a folder under the system temp."
    )


class RetrieveKeyFramesTool(ClipTool):
    """Evidence-weighted, spread-out key frames with Grad-CAM overlays and a contact sheet."""

    name: str = "retrieve_key_frames"
    description: str = (
        "Pick the k frames of an ultrasound clip (default 4) that the classifier's prediction "
        "relies on most, spread over the clip without near-duplicates. For each: source frame "
        "index, time in seconds, a score in [0, 1], a plain reason, and PNG paths of the frame "
        "and of a Grad-CAM heat-map overlay showing where in the image the evidence lies; plus "
        "one contact sheet PNG. Use it to show a clinician the evidence behind a classification. "
        "On failure returns {'error': '<path>: <problem>'}."
    )
    args_schema: type[BaseModel] = KeyFramesInput
    out_dir: str | Path | None = None
    """Default output folder when a call gives none; ``None`` = under the system temp."""

    def _run(self, video_path: str, k: int = 4, out_dir: str | None = None) -> dict[str, Any]:
        return guarded(video_path, lambda: self.key_frames(video_path, k, out_dir))

    def key_frames(self, video_path: str, k: int = 4, out_dir: str | Path | None = None) -> dict[str, Any]:
        """The tool result for one clip (raises ``UserError``/``OSError`` for bad input)."""
        from models.explain import explain_clip, frame_importance, select_key_frames
        from models.inference import get_classifier

        classifier = get_classifier(self.checkpoint)
        expl = explain_clip(classifier, video_path)
        scores, parts = frame_importance(expl)
        chosen = select_key_frames(scores, expl.clip.indices, expl.display_frames, k)
        folder = Path(out_dir or self.out_dir or _default_dir(video_path, classifier.meta.id, k))
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"{folder}: cannot create the output folder ({exc.strerror or exc})") from None
        return write_key_frames(expl, scores, parts, chosen, folder, k)


def _default_dir(video_path: str, checkpoint_id: str, k: int) -> Path:
    """``<tmp>/autous/key_frames/<stem>-<hash>``: one folder per clip version, checkpoint and k."""
    path = Path(video_path).resolve()
    stat = path.stat()
    key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}|{checkpoint_id}|{k}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:10]
    return Path(tempfile.gettempdir()) / "autous" / "key_frames" / f"{path.stem}-{digest}"


def write_key_frames(expl: Any, scores: np.ndarray, parts: dict[str, np.ndarray], chosen: list[int],
                     folder: Path, k: int) -> dict[str, Any]:
    """Write frame, overlay and contact-sheet PNGs into ``folder``; return the tool result."""
    from models.explain import WEIGHTS, describe_frame

    times = expl.clip.times_s
    frames, tiles = [], []
    for rank, pos in enumerate(chosen, start=1):
        frame = _upscale(expl.display_frames[pos])
        overlay = heat_overlay(frame, expl.heatmaps[pos])
        frame_path, overlay_path = folder / f"key_frame_{rank:02d}.png", folder / f"key_frame_{rank:02d}_overlay.png"
        Image.fromarray(frame).save(frame_path, compress_level=PNG_LEVEL)
        Image.fromarray(overlay).save(overlay_path, compress_level=PNG_LEVEL)
        entry = {
            "rank": rank,
            "index": int(expl.clip.indices[pos]),
            "time_s": None if np.isnan(times[pos]) else round(float(times[pos]), 3),
            "score": round(float(scores[pos]), 4),
            "reason": describe_frame(expl, pos, parts),
            "frame_path": str(frame_path.resolve()),
            "overlay_path": str(overlay_path.resolve()),
        }
        frames.append(entry)
        when = "time unknown" if entry["time_s"] is None else f"{entry['time_s']:.2f} s"
        tiles.append((overlay, f"#{rank}  frame {entry['index']}  {when}\nscore {entry['score']:.2f}"))
    sheet = folder / "key_frames_sheet.png"
    title = f"{Path(expl.clip.path).name}: evidence for {class_info(expl.target).name}"
    contact_sheet(tiles, title).save(sheet, compress_level=PNG_LEVEL)
    weights = ", ".join(f"{w:g} {name}" for name, w in WEIGHTS.items())
    result = {
        "path": str(expl.clip.path),
        "target_label": expl.target,
        "target_name": class_info(expl.target).name,
        "method": f"{expl.method}; score = {weights}; greedy pick over {len(scores)} sampled frames "
                  "with a minimum gap and near-duplicate suppression",
        "frames": frames,
        "contact_sheet": str(sheet.resolve()),
    }
    if len(frames) < k:
        result["note"] = (f"only {len(frames)} distinct frames (asked for {k}): the rest were "
                          "near-duplicates or the clip has too few frames")
    return result


def _upscale(frame: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(frame).resize((DISPLAY, DISPLAY), Image.BICUBIC))


def heat_overlay(frame: np.ndarray, heat: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """Blend a jet-coloured heat map (``[h,w]`` in [0,1]) over a grayscale frame; RGB uint8.

    The blend weight grows with the heat, so cold regions keep the plain image.
    """
    from matplotlib import colormaps

    h, w = frame.shape
    heat_img = Image.fromarray(np.asarray(heat, np.float32)).resize((w, h), Image.BILINEAR)
    heat_up = np.clip(np.asarray(heat_img), 0.0, 1.0)
    colour = colormaps["jet"](heat_up)[..., :3] * 255.0
    gray = np.repeat(frame[..., None].astype(np.float64), 3, axis=-1)
    a = (alpha * heat_up)[..., None]
    return np.clip(np.rint(gray * (1 - a) + colour * a), 0, 255).astype(np.uint8)


def contact_sheet(tiles: list[tuple[np.ndarray, str]], title: str, cols: int = 4) -> Image.Image:
    """A grid of RGB tiles with a two-line caption under each and a title on top."""
    font = ImageFont.load_default(size=12)
    cols = max(1, min(cols, len(tiles)))
    rows = max(1, math.ceil(len(tiles) / cols))
    pad, head = 6, 22
    cell_w, cell_h = DISPLAY + pad, DISPLAY + _CAPTION + pad
    sheet = Image.new("RGB", (cols * cell_w + pad, head + rows * cell_h + pad), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((pad, 4), title, fill="black", font=font)
    for n, (tile, caption) in enumerate(tiles):
        x, y = pad + (n % cols) * cell_w, head + (n // cols) * cell_h
        sheet.paste(Image.fromarray(tile), (x, y))
        draw.multiline_text((x + 2, y + DISPLAY + 3), caption, fill="black", font=font, spacing=3)
    return sheet
