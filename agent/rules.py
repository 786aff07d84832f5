"""The no-LLM report: a deterministic, guideline-grounded draft from the classifier result,
key frames, case text and retrieved passages. Every item cites the passages that match its class.
"""
from __future__ import annotations

import re
from typing import Any

from agent.report import DiagnosisDraft, Differential, FollowUp, frame_when
from models.classes import class_info

# What ultrasound shows for each class, in the guidelines' terms (used in the reasoning).
FEATURES: dict[str, str] = {
    "covid19": "bilateral, patchy B-lines (separate and coalescent), an irregular or thickened pleural line "
               "and small subpleural consolidations, with effusions uncommon",
    "bacterial_pneumonia": "a lobar or segmental consolidation with dynamic air bronchograms, often unilateral "
                           "and sometimes with a parapneumonic effusion",
    "viral_pneumonia": "B-lines and pleural-line irregularities much like COVID-19, which ultrasound alone "
                       "cannot tell apart from it",
    "normal": "lung sliding with A-lines and at most isolated B-lines (the A-profile)",
    "breast_malignant": "suspicious BI-RADS features: irregular shape, non-circumscribed or spiculated margins, "
                        "non-parallel orientation and posterior shadowing (BI-RADS 4-5)",
    "breast_benign": "benign BI-RADS features: an oval, circumscribed, parallel mass such as a fibroadenoma "
                     "or a simple cyst (BI-RADS 2-3)",
    "gallbladder_disease": "Tokyo Guidelines 2018 imaging signs: wall thickening over 4 mm, an enlarged "
                           "gallbladder, stones or sludge, pericholecystic fluid and a sonographic Murphy sign",
}

# The differentials to weigh for each class, in order, beyond the classes the model scored.
_B_LINES_OTHER = ("covid19", "Cardiogenic pulmonary oedema or interstitial lung disease (other causes of B-lines)")
ALTERNATIVES: dict[str, list[tuple[str, str]]] = {
    "covid19": [("viral_pneumonia", "Viral pneumonia (non-COVID)"), ("bacterial_pneumonia", "Bacterial pneumonia"),
                _B_LINES_OTHER],
    "viral_pneumonia": [("covid19", "COVID-19 pneumonia"), ("bacterial_pneumonia", "Bacterial pneumonia"), _B_LINES_OTHER],
    "bacterial_pneumonia": [("covid19", "COVID-19 pneumonia"), ("viral_pneumonia", "Viral pneumonia (non-COVID)"),
                            ("bacterial_pneumonia", "Atelectasis or pulmonary infarction (other causes of consolidation)")],
    "normal": [("covid19", "Early or mild pneumonia not reached by the probe")],
    "breast_malignant": [("breast_benign", "Benign lesion with suspicious features (e.g. complex cyst, fat necrosis, "
                                           "atypical fibroadenoma)")],
    "breast_benign": [("breast_malignant", "Malignant lesion mimicking a benign one (e.g. mucinous or medullary "
                                           "carcinoma)")],
    "gallbladder_disease": [
        ("gallbladder_disease", "Symptomatic cholelithiasis without acute cholecystitis"),
        ("gallbladder_disease", "Gallbladder polyp, adenomyomatosis or wall thickening of another cause "
                                "(including carcinoma)"),
    ],
}

FOLLOW_UP: dict[str, list[tuple[str, str]]] = {
    "covid19": [
        ("SARS-CoV-2 RT-PCR (nasopharyngeal swab)", "confirms or excludes COVID-19; ultrasound patterns are not specific"),
        ("Chest X-ray or low-dose chest CT", "extent of involvement and other causes of the pattern"),
        ("Blood tests: blood count, CRP, procalcitonin, D-dimer", "inflammation and bacterial co-infection"),
        ("Serial lung ultrasound with the LUS score", "tracks progression or recovery at the bedside"),
    ],
    "bacterial_pneumonia": [
        ("Chest X-ray", "confirms the consolidation and its extent"),
        ("Blood tests: blood count, CRP, procalcitonin; blood and sputum cultures", "bacterial infection and the pathogen"),
        ("SARS-CoV-2 RT-PCR", "excludes COVID-19 when the history allows it"),
        ("Follow-up lung ultrasound", "response of the consolidation and any effusion to treatment"),
    ],
    "viral_pneumonia": [
        ("Respiratory viral panel including SARS-CoV-2 RT-PCR", "identifies the virus"),
        ("Chest X-ray or CT", "extent and other causes"),
        ("Serial lung ultrasound with the LUS score", "tracks the course"),
    ],
    "normal": [
        ("Clinical reassessment", "a normal lung ultrasound does not explain the symptoms; look for other causes"),
        ("Chest X-ray if symptoms persist", "areas not reached by the probe"),
        ("Repeat lung ultrasound if the clinical state changes", "early pneumonia can be missed"),
    ],
    "breast_malignant": [
        ("Assign a BI-RADS category and perform diagnostic mammography", "completes imaging assessment"),
        ("Ultrasound-guided core needle biopsy", "recommended for BI-RADS 4 and 5 lesions"),
        ("Axillary ultrasound", "staging of regional lymph nodes"),
    ],
    "breast_benign": [
        ("Assign a BI-RADS category", "decides the management pathway"),
        ("Short-interval follow-up ultrasound at 6 months (BI-RADS 3)", "confirms stability of a probably benign lesion"),
        ("Biopsy if any suspicious feature or growth", "excludes a malignancy that mimics a benign lesion"),
    ],
    "gallbladder_disease": [
        ("Blood tests: white cell count, CRP, liver function tests, bilirubin", "Tokyo Guidelines systemic signs and biliary obstruction"),
        ("Tokyo Guidelines 2018 severity grading (grade I-III)", "guides antibiotics, drainage and timing of surgery"),
        ("Surgical consultation", "early laparoscopic cholecystectomy when indicated"),
        ("CT or MRCP", "complications, common bile duct stones or a suspected mass"),
    ],
}

GENERIC_FOLLOW_UP = [("Review of the clip by an experienced sonographer or radiologist", "the automatic result needs expert confirmation")]


def _ids(value: Any) -> list[str]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in value or []]


FEATURE_WORDS = ("pattern", "feature", "sign", "criteria", "finding", "profile", "lexicon", "consolidation", "b-line")
FOLLOW_UP_WORDS = ("follow", "management", "recommend", "action", "biopsy", "grading", "severity", "next step")
ESCALATION_WORDS = ("escalat", "limits of ai", "expert review")


def _about(p: dict[str, Any], words: tuple[str, ...]) -> bool:
    head = f"{p.get('title', '')} {p.get('section', '')}".lower()
    return any(w in head for w in words)


def _cite(passages: list[dict[str, Any]], class_id: str, n: int = 2, prefer: tuple[str, ...] = FEATURE_WORDS) -> list[str]:
    """Ids of the best passages for a class: tagged with it (documents mainly about it first), else with its
    organ; among those, passages whose title or section has a ``prefer`` word first, then retrieval order."""
    organ = class_info(class_id).organ
    tagged = [p for p in passages if class_id in _ids(p.get("classes"))]
    if not tagged:
        tagged = [p for p in passages if organ in _ids(p.get("organs"))]
    tagged.sort(key=lambda p: (_ids(p.get("classes"))[:1] != [class_id], not _about(p, prefer)))
    return [p["id"] for p in tagged[:n]]


def _cite_escalation(passages: list[dict[str, Any]]) -> list[str]:
    return [p["id"] for p in passages if _about(p, ESCALATION_WORDS)][:1]


def _first_sentence(text: str, limit: int = 260) -> str:
    text = " ".join(text.split())
    m = re.match(r"(.+?[.!?])(\s|$)", text)
    s = m.group(1) if m else text
    return s if len(s) <= limit else s[: limit - 1].rstrip() + "…"


def scored_order(cls: dict[str, Any]) -> list[str]:
    """The label first, then the other classes the model scored, most probable first."""
    label = cls["label"]
    probs = cls.get("probabilities") or {}
    return [label, *(k for k, _ in sorted(probs.items(), key=lambda kv: -kv[1]) if k != label)]


def _candidates(cls: dict[str, Any]) -> list[tuple[str, str]]:
    """(class id, diagnosis name) to rank: the label, the classes it scored, then organ alternatives."""
    out = [(c, class_info(c).name) for c in scored_order(cls)]
    out += [alt for alt in ALTERNATIVES.get(cls["label"], []) if alt[1] not in {name for _, name in out}]
    return out


def _is_class(class_id: str, name: str) -> bool:
    return class_info(class_id).name == name


def _likelihood(cls: dict[str, Any], rank: int, class_id: str, name: str) -> str:
    if cls.get("abstained"):
        return "moderate"
    if cls["source"] == "user":
        return "high" if rank == 0 else "low"
    p = (cls.get("probabilities") or {}).get(class_id) if _is_class(class_id, name) else None
    if rank == 0:
        return "high" if (cls.get("confidence") or 0) >= 0.8 else "moderate"
    return "moderate" if p is not None and p >= 0.2 else "low"


def _reason(cls: dict[str, Any], rank: int, class_id: str, name: str) -> str:
    own = _is_class(class_id, name)
    features = FEATURES.get(class_id) if own else None
    look = f"On ultrasound it typically shows {features}." if features else ""
    p = (cls.get("probabilities") or {}).get(class_id) if own else None
    if cls["source"] == "user":
        said = "The label given by the user (not verified by Auto-US's classifier)." if rank == 0 else \
            "An alternative to weigh against the user's label."
    elif cls.get("abstained"):
        said = (f"The classifier is uncertain (it abstained); it gave this {p:.0%}." if p is not None
                else "The classifier is uncertain (it abstained); consider this alternative.")
    elif p is not None:
        said = f"The classifier gave this {p:.0%}" + (" and ranks it first." if rank == 0 else ".")
    else:
        said = "An alternative with a similar ultrasound appearance."
    return " ".join(s for s in (said, look) if s) or name


def rules_draft(classification: dict[str, Any] | None, key_frames: list[dict[str, Any]],
                case: dict[str, Any], passages: list[dict[str, Any]]) -> DiagnosisDraft:
    """Write the three sections deterministically; case text is quoted, never interpreted."""
    if classification is None:
        return DiagnosisDraft(
            preliminary_diagnosis=[Differential(
                diagnosis="No diagnosis proposed: the clip could not be classified", likelihood="low",
                reasoning="Without a model result there is no ultrasound evidence to reason from.", citations=[])],
            justification="The classification step failed (see errors), so no preliminary diagnosis is offered.",
            recommended_follow_up=[FollowUp(examination="Provide a readable clip or a known classification",
                                            reason="the analysis needs one of them", citations=[]),
                                   *(FollowUp(examination=e, reason=r, citations=[]) for e, r in GENERIC_FOLLOW_UP)],
            citations=[])
    label = classification["label"]
    candidates = _candidates(classification)[:5]
    differentials = [
        Differential(diagnosis=name, likelihood=_likelihood(classification, i, cid, name),  # type: ignore[arg-type]
                     reasoning=_reason(classification, i, cid, name), citations=_cite(passages, cid))
        for i, (cid, name) in enumerate(candidates)
    ]
    follow = [FollowUp(examination=e, reason=r, citations=_cite(passages, label, 1, FOLLOW_UP_WORDS))
              for e, r in FOLLOW_UP.get(label, [])]
    if classification.get("abstained") or label not in FOLLOW_UP:
        follow = [FollowUp(examination=e, reason=r, citations=_cite_escalation(passages)) for e, r in GENERIC_FOLLOW_UP] + follow
    justification = _justification(classification, key_frames, case, passages)
    cited = list(dict.fromkeys(c for item in [*differentials, *follow] for c in item.citations))
    return DiagnosisDraft(preliminary_diagnosis=differentials, justification=justification,
                          recommended_follow_up=follow, citations=cited)


def _justification(cls: dict[str, Any], key_frames: list[dict[str, Any]], case: dict[str, Any],
                   passages: list[dict[str, Any]]) -> str:
    name = class_info(cls["label"]).name
    if cls["source"] == "user":
        parts = [f"The classification '{name}' was given by the user; Auto-US did not run its classifier on this case."]
    elif cls.get("abstained"):
        parts = [f"The CTU-Net classifier is uncertain: its top class, {name}, has confidence "
                 f"{cls.get('confidence', 0):.0%}, below its abstention threshold, so the differentials above are "
                 "listed evenly and the clip needs review by an expert."]
    else:
        parts = [f"The CTU-Net classifier assigned {name} with confidence {cls.get('confidence', 0):.0%}."]
    if key_frames:
        which = ", ".join(frame_when(f.get("index"), f.get("time_s")) for f in key_frames)
        parts.append(f"The frames its decision leaned on most are {which} (see the key frames and heat maps).")
    given = [f"{label}: \"{case[k]}\"" for k, label in
             (("chief_complaint", "chief complaint"), ("physical_exam", "physical examination"),
              ("additional_info", "additional information")) if case.get(k)]
    if given:
        parts.append("Clinical information as given (quoted, not interpreted by the rules): " + "; ".join(given) + ".")
    cited = _cite(passages, cls["label"], 1)
    if cited:
        p = next(p for p in passages if p["id"] == cited[0])
        parts.append(f"Guideline evidence [{p['id']}] ({p.get('title') or p.get('source')}): {_first_sentence(p.get('text', ''))}")
    else:
        parts.append("No guideline passage for this class was retrieved, so no guideline criterion is cited.")
    parts.append("This report was written without an LLM, by deterministic rules; correlate clinically.")
    return " ".join(parts)
