"""Build the paper's CUV data set from its four public sources, in their published layouts.

Classes: breast_benign, breast_malignant (BUV), gallbladder_disease (UIdataGB's nine disease
types merged), covid19 (POCUS and Butterfly merged), bacterial_pneumonia (POCUS).

- BUV (Lin et al., MICCAI 2022; "Miccai 2022 BUV Dataset"): ``rawframes/{benign,malignant}/
  <video>/<NNNNNN>.png`` frame folders; the official split in ``imagenet_vid_train_15frames.json``
  / ``imagenet_vid_val.json`` (COCO-VID, ``file_name`` = ``<class>/<video>/<frame>``).
- UIdataGB (Data in Brief 2024, "Gallblader Diseases Dataset"): still images in nine folders
  ``1Gallstones`` ... ``9Various causes of gallbladder wall thickening``; a normal folder,
  where present, is not a CUV class.
- POCUS (covid19_ultrasound repository): ``data/pocus_videos/{convex,linear}/`` clips named
  ``Cov``/``Pneu``/``Vir``/``Reg`` + ``_``/``-`` + name; patients from ``data/dataset_metadata.csv``
  (``Filename``, ``Patient ID / Name``).
- Butterfly (the repository's Butterfly gallery videos): the unzipped gallery
  (``<category>/<video>.mp4``) or its processed ``Cov_Butterfly_*.avi``; COVID-19 lung clips,
  normal-lung clips left out.

The output is ``<out>/<label>/<source>_<name>`` (symlinks, or copies) plus ``manifest.csv``
(``file,label,patient,source,original,split``) and ``skipped.csv`` (``original,source,reason``).
"""
from __future__ import annotations

import csv
import json
import os
import re
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from models.classes import CUV_CLASSES, normalize_name
from models.errors import ManifestError
from models.video import GIF_EXTS, IMAGE_EXTS, VIDEO_EXTS

SOURCES = ("buv", "uidatagb", "pocus", "butterfly")
CLIP_EXTS = VIDEO_EXTS | GIF_EXTS
POCUS_PREFIXES = {"cov": "covid19", "pneu": "bacterial_pneumonia", "vir": "viral_pneumonia", "reg": "normal"}
# (keyword in the folder name, disease type), most specific first: "gangrenous cholecystitis"
# must not be read as plain cholecystitis.
UIDATAGB_KEYWORDS = (
    ("gangren", "membranous and gangrenous cholecystitis"), ("gallstone", "gallstones"),
    ("retroperitone", "abdomen and retroperitoneum"), ("cholecystitis", "cholecystitis"),
    ("perforat", "perforation"), ("polyp", "polyps and cholesterol crystals"),
    ("adenomyomatosis", "adenomyomatosis"), ("carcinoma", "carcinoma"),
    ("thicken", "various causes of gallbladder wall thickening"),
)


@dataclass
class CuvItem:
    """One clip found in a source: its file or frame folder and where it goes."""

    path: Path
    label: str
    patient: str
    source: str
    original: str  # path relative to the source folder
    split: str = ""


@dataclass
class SourceScan:
    items: list[CuvItem] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (original, reason)


@dataclass
class CuvBuild:
    """What ``build_cuv`` wrote."""

    manifest: Path
    counts: dict[str, dict[str, int]]  # label -> source -> clips
    skipped: list[tuple[str, str, str]]  # (original, source, reason)


def _need_dir(root: Path, option: str) -> Path:
    if not root.is_dir():
        raise ManifestError(f"{root}: no such folder ({option})")
    return root


def _has_images(folder: Path) -> bool:
    return any(f.suffix.lower() in IMAGE_EXTS for f in folder.iterdir() if f.is_file())


def scan_buv(root: str | Path) -> SourceScan:
    """BUV frame folders under ``rawframes/{benign,malignant}/`` (or the class folders directly)."""
    root = _need_dir(Path(root), "--buv")
    frames = root / "rawframes" if (root / "rawframes").is_dir() else root
    splits = _buv_splits(root)
    scan = SourceScan()
    for cls, label in (("benign", "breast_benign"), ("malignant", "breast_malignant")):
        class_dir = frames / cls
        if not class_dir.is_dir():
            continue
        for video in sorted(p for p in class_dir.iterdir() if p.is_dir()):
            original = video.relative_to(root).as_posix()
            if not _has_images(video):
                scan.skipped.append((original, "folder has no frame images"))
                continue
            scan.items.append(CuvItem(video, label, f"buv:{video.name}", "buv", original,
                                      splits.get(f"{cls}/{video.name}", "")))
    if not scan.items:
        raise ManifestError(f"{root}: no BUV clips found (expected rawframes/benign|malignant/<video>/ "
                            "folders of frames)")
    return scan


def _buv_splits(root: Path) -> dict[str, str]:
    """``<class>/<video> -> train|val`` from the COCO-VID files CVA-Net ships (absent: empty)."""
    out: dict[str, str] = {}
    for split, name in (("train", "imagenet_vid_train_15frames.json"), ("val", "imagenet_vid_val.json")):
        for candidate in (root / name, root / "annotations" / f"instances_{name}"):
            if candidate.is_file():
                try:
                    data = json.loads(candidate.read_text(encoding="utf-8"))
                except (OSError, ValueError) as exc:
                    raise ManifestError(f"{candidate}: cannot read BUV split file ({exc})") from None
                for image in data.get("images", []):
                    out.setdefault(image["file_name"].rsplit("/", 1)[0], split)
                break
    return out


def _uidatagb_type(folder_name: str) -> str | None:
    """The UIdataGB disease type a folder holds ("1Gallstones" -> "gallstones"), or None."""
    key = normalize_name(folder_name).replace(" ", "")
    return next((disease for word, disease in UIDATAGB_KEYWORDS if word in key), None)


def scan_uidatagb(root: str | Path) -> SourceScan:
    """UIdataGB images: every image under one of the nine disease-type folders (at any depth <= 2)."""
    root = _need_dir(Path(root), "--uidatagb")
    scan = SourceScan()
    candidates = [d for d in sorted(root.iterdir()) if d.is_dir()]
    candidates += [d for c in candidates for d in sorted(c.iterdir()) if d.is_dir()]
    seen: set[Path] = set()
    for folder in candidates:
        if _uidatagb_type(folder.name) is None:
            if "normal" in folder.name.lower():
                scan.skipped.append((folder.relative_to(root).as_posix(), "normal gallbladder: not a CUV class"))
            continue
        for image in sorted(f for f in folder.rglob("*")
                            if f.is_file() and not f.name.startswith(".") and f not in seen):
            seen.add(image)
            original = image.relative_to(root).as_posix()
            if image.suffix.lower() not in IMAGE_EXTS:
                scan.skipped.append((original, f"not an image ({image.suffix or 'no extension'})"))
                continue
            scan.items.append(CuvItem(image, "gallbladder_disease", f"uidatagb:{folder.name}/{image.stem}",
                                      "uidatagb", original))
    if not scan.items:
        raise ManifestError(f"{root}: no UIdataGB images found (expected folders 1Gallstones ... "
                            "9Various causes of gallbladder wall thickening)")
    return scan


def _pocus_label(name: str) -> str | None:
    m = re.match(r"(cov|pneu|vir|reg)[-_ ]", name.lower())
    return POCUS_PREFIXES[m.group(1)] if m else None


def _pocus_patients(root: Path) -> dict[str, str]:
    """``normalised file stem -> patient id`` from the repository's dataset_metadata.csv."""
    for candidate in (root / "data" / "dataset_metadata.csv", root / "dataset_metadata.csv",
                      root.parent / "dataset_metadata.csv"):
        if candidate.is_file():
            with open(candidate, newline="", encoding="utf-8", errors="replace") as fh:
                rows = list(csv.DictReader(fh))
            return {normalize_name(r.get("Filename") or ""): (r.get("Patient ID / Name") or "").strip()
                    for r in rows if (r.get("Filename") or "").strip()}
    return {}


def scan_pocus(root: str | Path, skip_butterfly: bool = False) -> SourceScan:
    """POCUS clips under ``data/pocus_videos/{convex,linear}`` (the repository, its ``data`` or that folder)."""
    root = _need_dir(Path(root), "--pocus")
    videos = next((d for d in (root / "data" / "pocus_videos", root / "pocus_videos", root) if d.is_dir()))
    patients = _pocus_patients(root)
    scan = SourceScan()
    for clip in sorted(f for f in videos.rglob("*") if f.is_file() and not f.name.startswith(".")):
        original = clip.relative_to(root).as_posix()
        label = _pocus_label(clip.name)
        if clip.suffix.lower() not in CLIP_EXTS:
            continue  # notes, metadata and still images are not clips
        if label is None:
            scan.skipped.append((original, "no Cov/Pneu/Vir/Reg name prefix"))
        elif label not in CUV_CLASSES:
            scan.skipped.append((original, f"{label}: not a CUV class"))
        elif skip_butterfly and "butterfly" in clip.name.lower():
            scan.skipped.append((original, "Butterfly clip: taken from --butterfly"))
        else:
            pid = patients.get(normalize_name(clip.stem))
            scan.items.append(CuvItem(clip, label, f"pocus:{pid}" if pid else f"pocus:{clip.stem}",
                                      "pocus", original))
    if not scan.items:
        raise ManifestError(f"{root}: no POCUS clips found (expected data/pocus_videos/convex|linear/ "
                            "with Cov_/Pneu_ clips)")
    return scan


def scan_butterfly(root: str | Path) -> SourceScan:
    """Butterfly gallery clips: COVID-19 unless the name or category says normal (or Reg_)."""
    root = _need_dir(Path(root), "--butterfly")
    scan = SourceScan()
    for clip in sorted(f for f in root.rglob("*") if f.is_file() and f.suffix.lower() in CLIP_EXTS):
        original = clip.relative_to(root).as_posix()
        prefixed = _pocus_label(clip.name)
        if prefixed not in (None, "covid19") or "normal" in original.lower():
            scan.skipped.append((original, "normal lung: not a CUV class"))
            continue
        scan.items.append(CuvItem(clip, "covid19", f"butterfly:{clip.stem}", "butterfly", original))
    if not scan.items:
        raise ManifestError(f"{root}: no Butterfly clips found (expected the gallery's .mp4 videos)")
    return scan


def _place(item: CuvItem, out: Path, taken: set[str], copy: bool) -> str:
    """Link or copy ``item`` to ``<out>/<label>/<source>_<name>``; returns the manifest path."""
    stem, suffix = (item.path.stem, item.path.suffix) if item.path.is_file() else (item.path.name, "")
    rel, n = f"{item.label}/{item.source}_{stem}{suffix}", 1
    while rel in taken:  # same name from two folders of one source (e.g. convex and linear)
        n += 1
        rel = f"{item.label}/{item.source}_{stem}_{n}{suffix}"
    taken.add(rel)
    target = out / rel
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if not copy:
            os.symlink(item.path.resolve(), target, target_is_directory=item.path.is_dir())
        elif item.path.is_dir():
            shutil.copytree(item.path, target)
        else:
            shutil.copy2(item.path, target)
    except OSError as exc:  # e.g. left over from an interrupted build
        raise ManifestError(f"{target}: cannot {'copy' if copy else 'link'} {item.path} "
                            f"({exc.strerror or exc})") from None
    return rel


def build_cuv(out: str | Path, buv: str | Path | None = None, uidatagb: str | Path | None = None,
              pocus: str | Path | None = None, butterfly: str | Path | None = None, copy: bool = False) -> CuvBuild:
    """Scan the given sources and write the CUV tree and manifest under ``out`` (which must not hold one)."""
    out = Path(out)
    if not any((buv, uidatagb, pocus, butterfly)):
        raise ManifestError("build-cuv: no source given; use at least one of --buv, --uidatagb, --pocus, --butterfly")
    if (out / "manifest.csv").exists():
        raise ManifestError(f"{out}: already holds a data set (manifest.csv); choose an empty --out folder")
    scans: dict[str, SourceScan] = {}
    if buv:
        scans["buv"] = scan_buv(buv)
    if uidatagb:
        scans["uidatagb"] = scan_uidatagb(uidatagb)
    if pocus:
        scans["pocus"] = scan_pocus(pocus, skip_butterfly=butterfly is not None)
    if butterfly:
        scans["butterfly"] = scan_butterfly(butterfly)
    out.mkdir(parents=True, exist_ok=True)
    taken: set[str] = set()
    rows = []
    counts: dict[str, Counter] = {label: Counter() for label in CUV_CLASSES}
    for source, scan in scans.items():
        for item in scan.items:
            rows.append({"file": _place(item, out, taken, copy), "label": item.label, "patient": item.patient,
                         "source": source, "original": item.original, "split": item.split})
            counts[item.label][source] += 1
    skipped = [(orig, source, reason) for source, scan in scans.items() for orig, reason in scan.skipped]
    _write_csv(out / "skipped.csv", ["original", "source", "reason"], [dict(zip(("original", "source", "reason"), s))
                                                                    for s in skipped])
    manifest = out / "manifest.csv"
    _write_csv(manifest, ["file", "label", "patient", "source", "original", "split"], rows)
    return CuvBuild(manifest, {label: dict(c) for label, c in counts.items()}, skipped)


def _write_csv(path: Path, columns: list[str], rows: list[dict[str, str]]) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)
