"""Small generated test clips: ultrasound-like fan images written with PyAV / PIL.

Import from tests as ``from synthetic import write_video, synthetic_clip, ...``
(pytest puts ``tests/`` on ``sys.path``). Everything here is tiny and deterministic.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

KINDS = ("a_lines", "b_lines", "noise")

_CODECS = {
    ".mp4": "libx264",
    ".m4v": "libx264",
    ".mov": "libx264",
    ".avi": "mpeg4",
    ".mpeg": "mpeg1video",
    ".mpg": "mpeg1video",
}


def _even(n: int) -> int:
    return n + (n % 2)


def _as_rgb(frames: np.ndarray) -> np.ndarray:
    """[T,H,W] or [T,H,W,3] uint8 -> [T,H,W,3] uint8."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        raise TypeError(f"frames must be uint8, got {frames.dtype}")
    if frames.ndim == 3:
        frames = np.repeat(frames[..., None], 3, axis=-1)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be [T,H,W] or [T,H,W,3], got {frames.shape}")
    return frames


def write_video(path: str | Path, frames: np.ndarray, fps: int = 10) -> Path:
    """Write ``frames`` (uint8 ``[T,H,W]`` or ``[T,H,W,3]``) as a video; codec chosen by extension.

    .mp4/.m4v/.mov: H.264 (falls back to MPEG-4 part 2), .avi: MPEG-4, .mpeg/.mpg: MPEG-1, .gif: GIF.
    Odd sizes are padded to even for the YUV codecs. Parent folders are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rgb = _as_rgb(frames)
    ext = path.suffix.lower()
    if ext == ".gif":
        return _write_gif(path, rgb, fps)
    if ext not in _CODECS:
        raise ValueError(f"no codec for extension {ext!r}")
    t, h, w, _ = rgb.shape
    hh, ww = _even(h), _even(w)
    if (hh, ww) != (h, w):
        rgb = np.pad(rgb, ((0, 0), (0, hh - h), (0, ww - w), (0, 0)))
    codec = _CODECS[ext]
    if codec == "libx264" and "libx264" not in av.codecs_available:
        codec = "mpeg4"
    rate = 25 if codec == "mpeg1video" else fps  # MPEG-1 only allows standard frame rates
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = ww, hh, "yuv420p"
        if codec == "libx264":
            stream.options = {"preset": "ultrafast", "crf": "18"}
        else:
            stream.bit_rate = 2_000_000
        for frame in rgb:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _write_gif(path: Path, rgb: np.ndarray, fps: int) -> Path:
    with av.open(str(path), mode="w", format="gif") as container:
        stream = container.add_stream("gif", rate=fps)
        stream.width, stream.height = rgb.shape[2], rgb.shape[1]
        stream.pix_fmt = "rgb8"
        stream.time_base = Fraction(1, fps)
        for i, frame in enumerate(rgb):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24").reformat(format="rgb8")
            vf.pts, vf.time_base = i, Fraction(1, fps)
            for packet in stream.encode(vf):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _fan_mask(size: int) -> np.ndarray:
    """Boolean [size,size] mask of a convex-probe sector (apex at the top centre)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    cy, cx = -0.15 * size, (size - 1) / 2
    r = np.hypot(yy - cy, xx - cx)
    angle = np.degrees(np.arctan2(xx - cx, yy - cy))
    return (np.abs(angle) < 35) & (r > 0.25 * size) & (r < 1.1 * size)


def synthetic_clip(kind: str = "a_lines", n_frames: int = 12, size: int | tuple[int, int] = 64,
                   seed: int = 0, border: int = 0) -> np.ndarray:
    """An ultrasound-like grayscale clip, uint8 ``[T,H,W]``.

    A sector (fan) of speckle on black; ``a_lines``: static horizontal bright bands;
    ``b_lines``: vertical bright streaks whose brightness flickers over time; ``noise``:
    speckle only. ``size`` is an int (square) or (H, W); ``border`` adds black margins
    (left/right) plus a static white text-like marker in the top-left corner.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    h, w = (size, size) if isinstance(size, int) else size
    s = min(h, w)
    rng = np.random.default_rng(seed)
    mask = _fan_mask(s)
    yy, xx = np.mgrid[0:s, 0:s]
    base = 60.0 + 20.0 * (yy < 0.35 * s)  # brighter pleura-like band near the top
    frames = np.zeros((n_frames, s, s), np.float32)
    shift = rng.uniform(0, s / 6)
    for t in range(n_frames):
        img = base * rng.gamma(2.0, 0.5, size=(s, s))  # speckle
        if kind == "a_lines":
            for k in range(1, 4):
                row = int(0.3 * s + k * 0.18 * s + shift) % s
                img[max(row - 1, 0):row + 1] += 110
        elif kind == "b_lines":
            phase = 0.5 + 0.5 * np.sin(2 * np.pi * t / 4 + rng.uniform(0, 0.3))
            for col in (0.38 * s + shift / 2, 0.62 * s - shift / 2):
                c = int(col)
                img[int(0.3 * s):, max(c - 1, 0):c + 2] += 80 + 100 * phase
        frames[t] = np.where(mask, img, 0)
    clip = np.clip(frames, 0, 255).astype(np.uint8)
    if (h, w) != (s, s):
        out = np.zeros((n_frames, h, w), np.uint8)
        y0, x0 = (h - s) // 2, (w - s) // 2
        out[:, y0:y0 + s, x0:x0 + s] = clip
        clip = out
    if border:
        clip = np.pad(clip, ((0, 0), (0, 0), (border, border)))
        clip[:, 1:4, 1:1 + max(border - 2, 1)] = 255  # a burned-in static marker
    return clip


def write_frame_folder(directory: str | Path, frames: np.ndarray, ext: str = ".jpg",
                       pattern: str = "img_{:05d}", start: int = 1) -> Path:
    """Write each frame as an image file ``img_00001.jpg``, ... into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(np.asarray(frames), start=start):
        write_image(directory / (pattern.format(i) + ext), frame)
    return directory


def write_image(path: str | Path, frame: np.ndarray) -> Path:
    """Write one uint8 frame (``[H,W]`` or ``[H,W,3]``) as an image; format by extension."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    options = {"quality": 95} if path.suffix.lower() in (".jpg", ".jpeg") else {}
    Image.fromarray(np.asarray(frame, dtype=np.uint8)).save(path, **options)
    return path


def write_zero_frame_video(path: str | Path, size: int = 32) -> Path:
    """A valid container header with a video stream but no frames (.mp4 or .avi)."""
    path = Path(path)
    codec = "libx264" if path.suffix.lower() in (".mp4", ".mov", ".m4v") else "mpeg4"
    container = av.open(str(path), mode="w")
    stream = container.add_stream(codec, rate=10)
    stream.width, stream.height, stream.pix_fmt = size, size, "yuv420p"
    container.start_encoding()
    container.close()
    return path


def write_truncated(src: str | Path, dst: str | Path, keep: float = 0.5) -> Path:
    """Copy the first ``keep`` fraction of ``src``'s bytes to ``dst`` (a truncated download)."""
    data = Path(src).read_bytes()
    Path(dst).write_bytes(data[: int(len(data) * keep)])
    return Path(dst)
