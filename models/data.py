"""Data sets: clip records from a manifest or class folders, grouped K-fold splits, a decode cache.

A manifest is a CSV with at least ``file`` and ``label`` (and usually ``patient``) columns;
other columns travel along in ``ClipRecord.extra``. Rows that cannot be used (missing
file, empty label, label outside ``classes``) are reported in ``ManifestData.skipped``,
never fatal one by one. :class:`ClipCache` keeps each clip's ``2T`` sampled, cropped and
resized uint8 frames on disk so training decodes every clip once; its even frames are
exactly what :func:`models.video.load_clip` feeds the model.
"""
from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from models.classes import CLASSES, resolve_class
from models.errors import ManifestError, UserError, VideoError
from models.video import (GIF_EXTS, IMAGE_EXTS, MAX_SIDE, VIDEO_EXTS, InputSpec, crop_resize, normalize, read_clip,
                          sector_box)

CLIP_EXTS = VIDEO_EXTS | GIF_EXTS | IMAGE_EXTS
CACHE_VERSION = 1  # bump when the cached pixels change


@dataclass
class ClipRecord:
    """One clip: where it is, its class id, the patient it belongs to, and any other columns."""

    path: Path
    label: str
    patient: str
    extra: dict[str, str] = field(default_factory=dict)


@dataclass
class ManifestData:
    """Usable records and the rows left out, each as (file or row, reason)."""

    records: list[ClipRecord]
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def label_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(r.label for r in self.records).items()))


def canonical_label(raw: str) -> str:
    """A registry class id for ids, plain names and aliases ("COVID-19" -> covid19); others as written."""
    text = raw.strip()
    if text in CLASSES:
        return text
    try:
        return resolve_class(text).id
    except KeyError:
        return text


def _parse_classes(classes: Iterable[str] | None) -> list[str] | None:
    return None if classes is None else [canonical_label(c) for c in classes]


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """(column names, rows) of a manifest CSV; :class:`ManifestError` when it cannot be read."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            columns = [c.strip() for c in reader.fieldnames or []]
            return columns, list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ManifestError(f"{path}: cannot read manifest ({exc})") from None


def read_manifest(csv_path: str | Path, videos_dir: str | Path | None = None,
                  classes: Iterable[str] | None = None) -> ManifestData:
    """Records from a manifest CSV; ``file`` is relative to ``videos_dir`` (default: the CSV's folder).

    Without a ``patient`` column each clip is its own patient. Raises :class:`ManifestError`
    when the CSV is missing, lacks ``file``/``label``, or leaves no usable row.
    """
    csv_path = Path(csv_path)
    base = Path(videos_dir) if videos_dir is not None else csv_path.parent
    if not csv_path.is_file():
        raise ManifestError(f"{csv_path}: no such manifest file")
    if not base.is_dir():
        raise ManifestError(f"{base}: videos folder not found")
    wanted = _parse_classes(classes)
    columns, rows = _read_csv(csv_path)
    missing = [c for c in ("file", "label") if c not in columns]
    if missing:
        raise ManifestError(f"{csv_path}: missing column(s) {', '.join(missing)} "
                            f"(has: {', '.join(columns) or 'nothing'})")
    records: list[ClipRecord] = []
    skipped: list[tuple[str, str]] = []
    seen: set[Path] = set()
    for line, row in enumerate(rows, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in row.items() if k is not None}
        name, raw = row.pop("file", ""), row.pop("label", "")
        where = name or f"{csv_path}:{line}"
        if not name or not raw:
            skipped.append((where, f"line {line}: empty {'file' if not name else 'label'}"))
            continue
        label = canonical_label(raw)
        path = base / name
        if wanted is not None and label not in wanted:
            skipped.append((name, f"label {label!r} not among the selected classes"))
        elif not path.exists():
            skipped.append((name, f"file not found: {path}"))
        elif path in seen:
            skipped.append((name, f"line {line}: duplicate row"))
        else:
            seen.add(path)
            patient = row.pop("patient", "") or path.stem
            records.append(ClipRecord(path, label, patient, row))
    if not records:
        reason = f" ({len(skipped)} rows skipped, e.g. {skipped[0][0]}: {skipped[0][1]})" if skipped else ""
        raise ManifestError(f"{csv_path}: no usable rows{reason}")
    return ManifestData(records, skipped)


def _patients_from_manifest(root: Path) -> dict[str, str]:
    """``file -> patient`` from ``root/manifest.csv`` when it has both columns (keyed by path and name)."""
    path = root / "manifest.csv"
    if not path.is_file():
        return {}
    out: dict[str, str] = {}
    for row in _read_csv(path)[1]:
        name, patient = (row.get("file") or "").strip(), (row.get("patient") or "").strip()
        if name and patient:
            out[name] = out[Path(name).name] = patient
    return out


def read_class_folders(root: str | Path, classes: Iterable[str] | None = None) -> ManifestData:
    """Records from ``root/<class>/<clip>``: clip files or frame folders; the folder name is the label.

    Patient = the clip's stem, unless ``root/manifest.csv`` names a patient for the file.
    """
    root = Path(root)
    if not root.is_dir():
        raise ManifestError(f"{root}: no such data folder")
    wanted = _parse_classes(classes)
    patients = _patients_from_manifest(root)
    records: list[ClipRecord] = []
    skipped: list[tuple[str, str]] = []
    for class_dir in sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")):
        label = canonical_label(class_dir.name)
        for item in sorted(p for p in class_dir.iterdir() if not p.name.startswith(".")):
            rel = item.relative_to(root).as_posix()
            if wanted is not None and label not in wanted:
                skipped.append((rel, f"label {label!r} not among the selected classes"))
            elif item.is_dir() and not any(f.suffix.lower() in IMAGE_EXTS for f in item.iterdir()):
                skipped.append((rel, "folder has no frame images"))
            elif item.is_file() and item.suffix.lower() not in CLIP_EXTS:
                skipped.append((rel, f"not a clip ({item.suffix or 'no extension'})"))
            else:
                patient = patients.get(rel) or patients.get(item.name) or item.stem
                records.append(ClipRecord(item, label, patient, {"class_folder": class_dir.name}))
    if not records:
        raise ManifestError(f"{root}: no clips found in class sub-folders (expected {root}/<class>/<clip>)")
    return ManifestData(records, skipped)


def fold_warnings(records: Sequence[ClipRecord], k: int) -> list[str]:
    """Why a K-fold split cannot be fully stratified: classes with fewer patients than folds."""
    patients: dict[str, set[str]] = {}
    for r in records:
        patients.setdefault(r.label, set()).add(r.patient)
    return [f"class {label!r} has {len(p)} patient(s), fewer than {k} folds: some folds lack it"
            for label, p in sorted(patients.items()) if len(p) < k]


def grouped_stratified_kfold(records: Sequence[ClipRecord], k: int, seed: int = 0) -> list[tuple[list[int], list[int]]]:
    """Patient-grouped, class-stratified K folds as (train indices, test indices); deterministic under seed.

    No patient appears in two folds. Classes with fewer patients than ``k`` are warned
    about (:func:`fold_warnings`) and split anyway.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    n_patients = len({r.patient for r in records})
    if k < 2 or n_patients < k:
        raise ManifestError(f"cannot make {k} folds from {n_patients} patient(s): need k >= 2 and k <= patients")
    for message in fold_warnings(records, k):
        warnings.warn(message, stacklevel=2)
    labels = [r.label for r in records]
    groups = [r.patient for r in records]
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # sklearn's own "least populated class" note
        return [(sorted(tr.tolist()), sorted(te.tolist()))
                for tr, te in splitter.split(np.zeros(len(records)), labels, groups)]


def _default_cache_dir() -> Path:
    if os.environ.get("AUTOUS_CACHE_DIR"):
        return Path(os.environ["AUTOUS_CACHE_DIR"]) / "clips"
    repo = Path(__file__).resolve().parents[1]
    if (repo / "pyproject.toml").is_file():
        return repo / ".cache" / "clips"
    return Path.home() / ".cache" / "autous" / "clips"


def content_hash(path: Path) -> str:
    """sha1 over size and the first and last MiB of a file, or over a frame folder's file list."""
    h = hashlib.sha1()
    if path.is_dir():
        for f in sorted(path.iterdir()):
            if f.is_file():
                st = f.stat()
                h.update(f"{f.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        return h.hexdigest()
    size = path.stat().st_size
    h.update(str(size).encode())
    with open(path, "rb") as fh:
        h.update(fh.read(1 << 20))
        if size > 2 << 20:
            fh.seek(-(1 << 20), os.SEEK_END)
            h.update(fh.read())
    return h.hexdigest()


def decode_for_cache(path: Path, spec: InputSpec) -> np.ndarray:
    """``2T`` uniformly sampled frames, cropped with the box of the even (evaluation) frames, as uint8 [2T,S,S]."""
    frames = read_clip(path, 2 * spec.num_frames).frames
    box = sector_box(frames[::2]) if spec.crop_sector else None
    return crop_resize(frames, spec, box)


class ClipCache:
    """Decoded-frame cache: ``<dir>/<key>.npy`` holds a clip's ``2T`` frames, uint8 ``[2T, S, S]``.

    The key covers the file content and the parts of the spec that change pixels.
    ``dir`` defaults to ``<repo>/.cache/clips`` (``$AUTOUS_CACHE_DIR/clips`` when set).
    """

    def __init__(self, spec: InputSpec, cache_dir: str | Path | None = None):
        self.spec = spec
        self.dir = Path(cache_dir) if cache_dir is not None else _default_cache_dir()
        parts = {"v": CACHE_VERSION, "max_side": MAX_SIDE, "num_frames": spec.num_frames,
                 "image_size": spec.image_size, "crop_sector": spec.crop_sector}
        self._spec_part = hashlib.sha1(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]
        self._file_hashes: dict[tuple[str, int, int], str] = {}  # training reads each clip every epoch

    def key(self, path: Path) -> str:
        if path.is_dir():
            return f"{content_hash(path)}-{self._spec_part}"
        st = path.stat()
        memo = (str(path.resolve()), st.st_size, st.st_mtime_ns)
        if memo not in self._file_hashes:
            self._file_hashes[memo] = content_hash(path)
        return f"{self._file_hashes[memo]}-{self._spec_part}"

    def frames(self, item: ClipRecord | str | Path) -> np.ndarray:
        """The cached ``[2T, S, S]`` uint8 frames of a record or path (decoded on a miss)."""
        path = Path(item.path if isinstance(item, ClipRecord) else item)
        if not path.exists():
            return decode_for_cache(path, self.spec)  # raises the loader's clear VideoError
        target = self.dir / f"{self.key(path)}.npy"
        if target.is_file():
            try:
                return np.load(target, allow_pickle=False)
            except (OSError, ValueError):
                target.unlink(missing_ok=True)  # a damaged entry is decoded again
        frames = decode_for_cache(path, self.spec)
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as fh:
                np.save(fh, frames, allow_pickle=False)
            os.replace(tmp, target)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise UserError(f"{self.dir}: cannot write the clip cache ({exc.strerror or exc}); "
                            "set AUTOUS_CACHE_DIR to a writable folder") from None
        return frames

    def load_all(self, records: Sequence[ClipRecord], progress: Callable[[ClipRecord], None] | None = None
                 ) -> tuple[list[ClipRecord], list[np.ndarray], list[tuple[str, str]]]:
        """Cached frames of every record; a clip that cannot be read is reported, not fatal.

        Returns (records that loaded, their frames, [(path, error message)]).
        """
        ok: list[ClipRecord] = []
        frames: list[np.ndarray] = []
        failed: list[tuple[str, str]] = []
        for record in records:
            try:
                frames.append(self.frames(record))
                ok.append(record)
            except VideoError as exc:  # a cache that cannot be written stops everything
                failed.append((str(record.path), str(exc)))
            if progress is not None:
                progress(record)
        return ok, frames, failed


def cached_frames(item: ClipRecord | str | Path, spec: InputSpec, cache_dir: str | Path | None = None) -> np.ndarray:
    """uint8 ``[2T, S, S]`` frames of one clip through the on-disk cache."""
    return ClipCache(spec, cache_dir).frames(item)


class ClipDataset(torch.utils.data.Dataset):
    """``(x [T,1,S,S] float, label index)`` per record, from the decode cache.

    Evaluation takes the even cached frames (identical to :func:`models.video.load_clip`);
    training takes ``augment(frames_2T)`` when given (it must return the normalised tensor),
    else a random one of the two interleaved ``T``-frame samplings (temporal jitter).
    """

    def __init__(self, records: Sequence[ClipRecord], classes: Sequence[str], spec: InputSpec, train: bool,
                 augment: Callable[[np.ndarray], torch.Tensor] | None = None,
                 cache: ClipCache | None = None, seed: int = 0):
        unknown = sorted({r.label for r in records} - set(classes))
        if unknown:
            raise ValueError(f"labels not among classes {list(classes)}: {', '.join(unknown)}")
        self.records = list(records)
        self.classes = list(classes)
        self.spec = spec
        self.train = train
        self.augment = augment
        self.cache = cache or ClipCache(spec)
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        record = self.records[i]
        frames = self.cache.frames(record)
        label = self.classes.index(record.label)
        if not self.train:
            return normalize(frames[::2], self.spec), label
        if self.augment is not None:
            return self.augment(frames), label
        return normalize(frames[int(self.rng.integers(0, 2))::2], self.spec), label
