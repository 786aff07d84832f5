"""Class registry: the label ids Auto-US knows, with plain names and organs.

CUV (the paper's data set) has five classes over three organs; the bundled lung
checkpoint adds ``normal`` and the lung data set also has ``viral_pneumonia``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class ClassInfo:
    """One diagnostic class: its id, a plain name and the organ it concerns."""

    id: str
    name: str
    organ: str
    aliases: tuple[str, ...] = ()


CLASSES: dict[str, ClassInfo] = {
    c.id: c
    for c in (
        ClassInfo("breast_benign", "Benign breast lesion", "breast", ("benign breast", "benign")),
        ClassInfo("breast_malignant", "Malignant breast lesion", "breast",
                  ("malignant breast", "malignant", "breast cancer", "breast carcinoma")),
        ClassInfo("gallbladder_disease", "Gallbladder disease", "gallbladder",
                  ("gallbladder", "cholecystitis", "cholelithiasis", "gallstones")),
        ClassInfo("covid19", "COVID-19 pneumonia", "lung", ("covid", "covid-19", "covid 19", "sars-cov-2")),
        ClassInfo("bacterial_pneumonia", "Bacterial pneumonia", "lung", ("bacterial", "pneumonia")),
        ClassInfo("viral_pneumonia", "Viral pneumonia (non-COVID)", "lung", ("viral",)),
        ClassInfo("normal", "Normal lung", "lung", ("normal", "healthy", "normal lung ultrasound")),
    )
}

CUV_CLASSES: tuple[str, ...] = (
    "breast_benign", "breast_malignant", "gallbladder_disease", "covid19", "bacterial_pneumonia",
)
ORGANS: tuple[str, ...] = ("breast", "gallbladder", "lung")


def normalize_name(text: str) -> str:
    """Lower-case words of letters and digits, single-spaced: how names are compared."""
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def resolve_class(text: str) -> ClassInfo:
    """Map a class id, plain name or alias ("Malignant breast lesion", "covid-19") to its ClassInfo.

    Raises ``KeyError`` with the known ids when nothing matches.
    """
    key = normalize_name(text)
    for info in CLASSES.values():
        if key in {normalize_name(info.id), normalize_name(info.name), *(normalize_name(a) for a in info.aliases)}:
            return info
    raise KeyError(f"unknown class {text!r}; known: {', '.join(CLASSES)}")


def class_info(class_id: str) -> ClassInfo:
    """ClassInfo for an id; an id outside the registry gets a neutral entry (user-trained classes)."""
    return CLASSES.get(class_id) or ClassInfo(class_id, class_id.replace("_", " "), "unknown")
