"""Video input: every clip form read into uniformly sampled grayscale frames, then preprocessed.

Forms: a video file (decord, PyAV as fallback), a GIF or MPEG program stream (PyAV), a folder of frame images
(natural sort order) and a single still image (a one-frame clip repeated to T). Frames are
capped to ``MAX_SIDE`` pixels on read. :func:`preprocess` crops the ultrasound sector,
resizes with the aspect kept, pads to S x S and z-scores the clip. Every unreadable input
raises :class:`VideoError` with the message ``"<path>: <problem>"``.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from models.errors import VideoError

MAX_SIDE = 1024
VIDEO_EXTS = frozenset({".mp4", ".mov", ".avi", ".mpeg", ".mpg", ".m4v", ".mkv", ".webm"})
GIF_EXTS = frozenset({".gif"})
# decord seeks inexactly in MPEG program streams (the frame returned depends on the other
# indices asked for); PyAV decodes them sequentially, exactly and faster.
SEQUENTIAL_EXTS = frozenset({".mpeg", ".mpg"})
IMAGE_EXTS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})
NORMALIZATIONS = ("per_clip_zscore", "none")
STD_FLOOR = 1.0  # in uint8 grey levels: a flat clip is not blown up to noise


@dataclass(frozen=True)
class InputSpec:
    """What a model expects: T frames of S x S pixels, sector crop on/off, normalisation."""

    num_frames: int = 16
    image_size: int = 112
    crop_sector: bool = True
    normalization: str = "per_clip_zscore"

    def __post_init__(self) -> None:
        if self.num_frames < 1 or self.image_size < 8:
            raise ValueError(f"bad input spec: num_frames={self.num_frames}, image_size={self.image_size}")
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {self.normalization!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputSpec:
        """Build from a dict; unknown keys are an error (a checkpoint from other code)."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown input-spec keys: {', '.join(sorted(unknown))}")
        return cls(**data)


@dataclass
class Clip:
    """Sampled grayscale frames of one input and where they came from."""

    path: Path
    frames: np.ndarray  # uint8 [T, H, W]
    indices: np.ndarray  # source frame index of each sampled frame
    fps: float  # 0.0 when unknown (frame folders, still images)
    total_frames: int
    source_size: tuple[int, int]  # (H, W) before the MAX_SIDE cap
    kind: str  # "video", "frames" or "image"

    @property
    def times_s(self) -> np.ndarray:
        """Time of each sampled frame in seconds (NaN when the frame rate is unknown)."""
        if self.fps > 0:
            return self.indices / self.fps
        return np.full(len(self.indices), np.nan)


def sample_indices(total: int, num_frames: int) -> np.ndarray:
    """Uniform start-aligned sampling: ``floor(i * total / T)``; repeats when total < T.

    Start alignment makes the even entries of ``sample_indices(n, 2T)`` equal
    ``sample_indices(n, T)``, which the decode cache relies on.
    """
    return (np.arange(num_frames, dtype=np.int64) * total) // num_frames


def _natural_key(name: str) -> list[Any]:
    return [int(p) if p.isdigit() else p.lower() for p in re.split(r"(\d+)", name)]


def _capped(h: int, w: int, max_side: int) -> tuple[int, int]:
    scale = min(1.0, max_side / max(h, w))
    return max(1, round(h * scale)), max(1, round(w * scale))


def _gray(rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 [..., 3] -> luma uint8 (ITU-R 601, as PIL's "L")."""
    rgb = rgb.astype(np.uint32)
    return ((rgb[..., 0] * 299 + rgb[..., 1] * 587 + rgb[..., 2] * 114 + 500) // 1000).astype(np.uint8)


def _short(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return " ".join(text.split())[:160]


def read_clip(path: str | Path, num_frames: int = 16, max_side: int = MAX_SIDE) -> Clip:
    """Read ``num_frames`` uniformly sampled grayscale frames from any supported input."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    p = Path(path)
    if not p.exists():
        raise VideoError(f"{p}: no such file or folder")
    if p.is_dir():
        return _read_folder(p, num_frames, max_side)
    ext = p.suffix.lower()
    if ext not in VIDEO_EXTS | GIF_EXTS | IMAGE_EXTS:
        raise VideoError(f"{p}: unsupported file type {ext or '(no extension)'!r} "
                         f"(videos: {', '.join(sorted(VIDEO_EXTS | GIF_EXTS))}; "
                         f"images: {', '.join(sorted(IMAGE_EXTS))}; or a folder of frames)")
    if p.stat().st_size == 0:
        raise VideoError(f"{p}: empty file (0 bytes)")
    if ext in IMAGE_EXTS:
        frame, size = _open_image(p, max_side)
        return Clip(p, np.repeat(frame[None], num_frames, axis=0), np.zeros(num_frames, np.int64),
                    0.0, 1, size, "image")
    if ext in VIDEO_EXTS - SEQUENTIAL_EXTS:
        try:
            return _read_decord(p, num_frames, max_side)
        except VideoError:
            raise
        except Exception:  # noqa: BLE001 - decord fails on some containers; PyAV decides
            pass
    return _read_pyav(p, num_frames, max_side)


def _probe(p: Path) -> tuple[int, int, int]:
    """(H, W, frames the header declares or 0) from the container header, without decoding."""
    import av

    with av.open(str(p)) as container:
        if not container.streams.video:
            raise VideoError(f"{p}: no video frames in file")
        stream = container.streams.video[0]
        return int(stream.codec_context.height), int(stream.codec_context.width), int(stream.frames or 0)


def _check_complete(p: Path, declared: int, found: int) -> None:
    """A file whose header promises clearly more frames than can be read is truncated."""
    if declared and found < 0.9 * declared - 1:
        raise VideoError(f"{p}: truncated or corrupt video (header declares {declared} frames, "
                         f"only {found} readable)")


def _read_decord(p: Path, num_frames: int, max_side: int) -> Clip:
    import decord

    decord.logging.set_level(decord.logging.QUIET)  # failures are reported as VideoError instead
    h, w, declared = _probe(p)
    if h <= 0 or w <= 0:
        raise RuntimeError("unknown frame size")
    ch, cw = _capped(h, w, max_side)
    size_args = {"width": cw, "height": ch} if (ch, cw) != (h, w) else {}
    vr = decord.VideoReader(str(p), ctx=decord.cpu(0), num_threads=1, **size_args)
    total = len(vr)
    _check_complete(p, declared, total)
    indices = sample_indices(total, num_frames)
    batch = vr.get_batch(indices.tolist())
    rgb = batch.asnumpy() if hasattr(batch, "asnumpy") else np.asarray(batch)
    return Clip(p, _gray(rgb), indices, float(vr.get_avg_fps() or 0.0), total, (h, w), "video")


def _read_pyav(p: Path, num_frames: int, max_side: int) -> Clip:
    """Decode with PyAV (GIFs, and containers decord cannot open), keeping only sampled frames."""
    import av

    try:
        with av.open(str(p)) as container:
            if not container.streams.video:
                raise VideoError(f"{p}: no video frames in file")
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 0.0)
            declared = int(stream.frames or 0)
            total = declared or sum(1 for pk in container.demux(stream) if pk.size)
        frames, count = _decode_pyav(p, sample_indices(total, num_frames), max_side)
        if count == 0:
            raise VideoError(f"{p}: no video frames in file")
        _check_complete(p, declared, count)
        if count != total:  # the header or packet count was off: sample again with the true count
            total = count
            frames, _ = _decode_pyav(p, sample_indices(total, num_frames), max_side)
    except VideoError:
        raise
    except (av.FFmpegError, OSError, ValueError, RuntimeError) as exc:
        raise VideoError(f"{p}: cannot decode video; corrupt, truncated or not a video ({_short(exc)})") from None
    indices = sample_indices(total, num_frames)
    size = frames.pop("size")
    return Clip(p, np.stack([frames[i] for i in indices]), indices, fps, total, size, "video")


def _decode_pyav(p: Path, wanted: np.ndarray, max_side: int) -> tuple[dict, int]:
    """Decode ``p`` sequentially; returns ({index: gray frame, "size": (H, W)}, frames decoded)."""
    import av

    keep = set(wanted.tolist())
    out: dict = {}
    count = 0
    with av.open(str(p)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        for frame in container.decode(stream):
            if count == 0:
                out["size"] = (frame.height, frame.width)
            if count in keep:
                ch, cw = _capped(frame.height, frame.width, max_side)
                if (ch, cw) != (frame.height, frame.width):
                    frame = frame.reformat(width=cw, height=ch)
                out[count] = _gray(frame.to_ndarray(format="rgb24"))
            count += 1
    return out, count


def _open_image(p: Path, max_side: int) -> tuple[np.ndarray, tuple[int, int]]:
    try:
        with Image.open(p) as img:
            size = (img.height, img.width)
            img.draft("L", (max_side, max_side))  # JPEG: decode at reduced scale when huge
            img = img.convert("L")
            ch, cw = _capped(img.height, img.width, max_side)
            if (ch, cw) != (img.height, img.width):
                img = img.resize((cw, ch), Image.BILINEAR)
            return np.asarray(img, dtype=np.uint8), size
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise VideoError(f"{p}: cannot read image ({_short(exc)})") from None


def _read_folder(p: Path, num_frames: int, max_side: int) -> Clip:
    try:
        entries = list(p.iterdir())
    except OSError as exc:
        raise VideoError(f"{p}: cannot read folder ({_short(exc)})") from None
    files = sorted((f for f in entries if f.suffix.lower() in IMAGE_EXTS and f.is_file()),
                   key=lambda f: _natural_key(f.name))
    if not files:
        raise VideoError(f"{p}: folder has no frame images ({', '.join(sorted(IMAGE_EXTS))})")
    indices = sample_indices(len(files), num_frames)
    cache: dict[int, np.ndarray] = {}
    size: tuple[int, int] | None = None
    for i in dict.fromkeys(indices.tolist()):
        if files[i].stat().st_size == 0:
            raise VideoError(f"{files[i]}: empty file (0 bytes)")
        frame, fsize = _open_image(files[i], max_side)
        size = size or fsize
        first = next(iter(cache.values()), frame)
        if frame.shape != first.shape:  # odd frame size in a sequence: match the first one
            frame = np.asarray(Image.fromarray(frame).resize(first.shape[::-1], Image.BILINEAR))
        cache[i] = frame
    assert size is not None
    return Clip(p, np.stack([cache[i] for i in indices]), indices, 0.0, len(files), size, "frames")


def sector_box(frames: np.ndarray) -> tuple[int, int, int, int]:
    """Bounding box ``(y0, y1, x0, x1)`` (end exclusive) of the ultrasound image region.

    The region is where pixels vary over time (speckle moves; burned-in text and
    markers do not) or, for still or nearly static clips, where they are bright.
    Rows/columns with only a few such pixels (labels, rulers) are dropped. Falls back
    to the full frame rather than ever returning a tiny or empty box.
    """
    frames = np.asarray(frames)
    _, h, w = frames.shape
    full = (0, h, 0, w)
    small = frames[:, ::2, ::2] if min(h, w) >= 64 else frames  # half resolution is plenty
    step = 2 if small is not frames else 1
    f = small.astype(np.float32)
    mask = f.max(axis=0) - f.min(axis=0) > 12 if len(f) > 1 else np.zeros(f.shape[1:], bool)
    if mask.mean() < 0.05:  # static clip or still image: use brightness instead
        mask = f.mean(axis=0) > 20
    if mask.mean() < 0.02:
        return full
    rows, cols = mask.sum(axis=1), mask.sum(axis=0)
    ys = np.flatnonzero(rows >= 0.08 * rows.max())
    xs = np.flatnonzero(cols >= 0.08 * cols.max())
    y0, y1 = int(ys[0]) * step, min(h, (int(ys[-1]) + 1) * step)
    x0, x1 = int(xs[0]) * step, min(w, (int(xs[-1]) + 1) * step)
    if (y1 - y0) * (x1 - x0) < 0.1 * h * w or min(y1 - y0, x1 - x0) < 8:
        return full
    return y0, y1, x0, x1


def crop_resize(frames: np.ndarray, spec: InputSpec, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Sector crop (when ``spec.crop_sector``; ``box`` overrides), aspect-kept resize, pad: uint8 [T,S,S]."""
    frames = np.asarray(frames, dtype=np.uint8)
    if spec.crop_sector:
        y0, y1, x0, x1 = box or sector_box(frames)
        frames = frames[:, y0:y1, x0:x1]
    s = spec.image_size
    _, h, w = frames.shape
    nh, nw = max(1, round(h * s / max(h, w))), max(1, round(w * s / max(h, w)))
    out = np.zeros((len(frames), s, s), np.uint8)
    top, left = (s - nh) // 2, (s - nw) // 2
    for i, frame in enumerate(frames):
        resized = frame if (nh, nw) == (h, w) else np.asarray(
            Image.fromarray(np.ascontiguousarray(frame)).resize((nw, nh), Image.BILINEAR))
        out[i, top:top + nh, left:left + nw] = resized
    return out


def normalize(frames: np.ndarray, spec: InputSpec) -> torch.Tensor:
    """uint8 [T,S,S] -> float32 [T,1,S,S]; per-clip z-score over all pixels (std floored)."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).float().unsqueeze(1)
    if spec.normalization == "per_clip_zscore":
        x = (x - x.mean()) / x.std(unbiased=False).clamp_min(STD_FLOOR)
    else:
        x = x / 255.0
    return x


def preprocess(frames: np.ndarray, spec: InputSpec) -> torch.Tensor:
    """Model input from sampled frames: crop, resize, pad, normalise -> float32 [T,1,S,S]."""
    return normalize(crop_resize(frames, spec), spec)


def load_clip(path: str | Path, spec: InputSpec) -> tuple[torch.Tensor, Clip]:
    """Read and preprocess one input: (tensor [T,1,S,S], the Clip it came from)."""
    clip = read_clip(path, spec.num_frames)
    return preprocess(clip.frames, spec), clip
