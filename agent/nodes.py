"""The nodes of the diagnosis graph and the check step. Each node records its failures in state."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from langchain_core.tools import BaseTool
from pydantic import ValidationError

from agent.case import CLINICAL_FIELDS, CaseError, load_case
from agent.report import DiagnosisDraft, Differential, FollowUp, Report, frame_when, write_report
from agent.rules import FEATURES, rules_draft, scored_order
from agent.state import DiagnosisState
from models.classes import CLASSES, ORGANS, class_info
from prompts import load_prompt

MAX_LLM_ATTEMPTS = 2
KEY_FRAMES = 4
PASSAGES_PER_QUERY = 3
MAX_PASSAGES = 15
FENCE = "case-data"


NO_DRAFT = DiagnosisDraft(
    preliminary_diagnosis=[Differential(diagnosis="No diagnosis could be written", likelihood="low",
                                        reasoning="Writing the report failed (see errors).", citations=[])],
    justification="No justification could be written (see errors).",
    recommended_follow_up=[FollowUp(examination="Review of the case by an expert", reason="the report could not be written",
                                    citations=[])],
    citations=[])


def _error(node: str, message: str) -> dict[str, Any]:
    return {"errors": [{"node": node, "message": message}]}


def guarded(node: str, fn: Callable[[DiagnosisState], dict[str, Any]], on_error: dict[str, Any]):
    """Wrap a node: an unexpected exception is recorded in ``errors`` and ``on_error`` applied, never raised."""
    def run(state: DiagnosisState) -> dict[str, Any]:
        try:
            return fn(state)
        except Exception as exc:  # a node must not take the graph down
            return {**on_error, **_error(node, f"{type(exc).__name__}: {exc}")}
    run.__name__ = run.__qualname__ = node
    run.__doc__ = fn.__doc__
    return run


def _call_tool(tool: BaseTool, args: dict[str, Any]) -> dict[str, Any]:
    """Invoke a tool through LangChain; a raised exception becomes ``{"error": ...}`` like a tool error."""
    try:
        result = tool.invoke(args)
    except Exception as exc:  # a tool must not take the graph down
        return {"error": f"{tool.name} failed: {type(exc).__name__}: {exc}"}
    if isinstance(result, str):
        try:
            result = json.loads(result)
        except json.JSONDecodeError:
            return {"error": f"{tool.name} returned non-JSON output: {result[:200]}"}
    return result if isinstance(result, dict) else {"error": f"{tool.name} returned {type(result).__name__}"}


# ---------------------------------------------------------------- intake, classify, key frames, retrieve

def intake(state: DiagnosisState) -> dict[str, Any]:
    """Load and validate the case folder; a user-given label becomes the classification."""
    try:
        loaded = load_case(state["case_dir"])
    except CaseError as exc:
        return _error("intake", str(exc))
    update: dict[str, Any] = {
        "case_id": loaded.id, "case": loaded.case.model_dump(), "notes": loaded.notes,
        "video_path": str(loaded.video_path) if loaded.video_path else None,
        "classification": None, "key_frames": [], "passages": [], "draft": None, "attempts": 0, "problems": [],
    }
    if loaded.case.classification:
        info = class_info(loaded.case.classification)
        update["classification"] = {"label": info.id, "label_name": info.name, "source": "user",
                                    "confidence": None, "probabilities": {}, "abstained": False}
        update["notes"] = [*loaded.notes, "Classification given by the user in case.yaml; the classifier and key-frame steps were skipped."]
    return update


def make_classify(tool: BaseTool):
    def classify(state: DiagnosisState) -> dict[str, Any]:
        """Run the CTU-Net classification tool on the case's clip."""
        result = _call_tool(tool, {"video_path": state["video_path"]})
        if "error" in result:
            return {"classification": None, **_error("classify", result["error"])}
        keep = ("label", "label_name", "confidence", "probabilities", "abstained", "abstain_threshold", "checkpoint")
        return {"classification": {**{k: result.get(k) for k in keep}, "source": "model"}}
    return classify


def make_key_frames(tool: BaseTool):
    def key_frames(state: DiagnosisState) -> dict[str, Any]:
        """Pick the key frames and write them, with heat-map overlays, into the report folder."""
        out = Path(state["out_dir"]) / "key_frames"
        result = _call_tool(tool, {"video_path": state["video_path"], "k": KEY_FRAMES, "out_dir": str(out)})
        if "error" in result:
            return {"key_frames": [], **_error("key_frames", result["error"])}
        return {"key_frames": list(result.get("frames") or [])}
    return key_frames


def _weighed_classes(classification: dict[str, Any]) -> list[str]:
    """The label first, then the other classes the model scored (or, for a user label, its organ's classes)."""
    if classification.get("probabilities"):
        return scored_order(classification)[:4]
    label = classification["label"]
    organ = class_info(label).organ
    return [label, *(c for c, info in CLASSES.items() if info.organ == organ and c != label)][:4]


def retrieval_queries(classification: dict[str, Any] | None, case: dict[str, Any]) -> list[dict[str, Any]]:
    """Search-tool inputs: each class to weigh (filtered to it, worded with its ultrasound features), the top
    class's follow-up, the case text (organ filter) and, when the classifier abstained, when to escalate."""
    text = " ".join(str(case.get(k) or "") for k in CLINICAL_FIELDS).strip()[:300]
    if classification is None:
        return [{"query": text, "k": PASSAGES_PER_QUERY}] if text else []
    weighed = _weighed_classes(classification)
    queries = [{"query": f"{class_info(c).name}: {FEATURES.get(c, 'ultrasound features and diagnostic criteria')}",
                "k": PASSAGES_PER_QUERY, **({"classes": [c]} if c in CLASSES else {})} for c in weighed]
    top = class_info(weighed[0])
    queries.append({**queries[0], "query": f"{top.name}: recommended follow-up examinations and management"})
    if text:
        queries.append({"query": f"{top.name}. {text}", "k": PASSAGES_PER_QUERY,
                        **({"organ": top.organ} if top.organ in ORGANS else {})})
    if classification.get("abstained") or top.organ not in ORGANS:  # early, so the passage cap keeps it
        queries.insert(1, {"query": "limits of AI-assisted ultrasound classification: when to escalate to expert review",
                           "k": 1})
    return queries


def make_retrieve(tool: BaseTool):
    def retrieve(state: DiagnosisState) -> dict[str, Any]:
        """Search the guideline index; passages merged by id in query order (most relevant class first), capped."""
        found: dict[str, dict[str, Any]] = {}
        errors = []
        for args in retrieval_queries(state.get("classification"), state.get("case") or {}):
            result = _call_tool(tool, args)
            if "error" in result:
                errors.append({"node": "retrieve", "message": result["error"]})
                continue
            for p in result.get("passages") or []:
                found.setdefault(p["id"], p)
        passages = list(found.values())[:MAX_PASSAGES]
        return {"passages": passages, "errors": list(dict((e["message"], e) for e in errors).values())}
    return retrieve


# ---------------------------------------------------------------- compose, check, fallback, done

def _fence(text: Any) -> str:
    """Case text as data: the fence markers cannot be closed from inside it."""
    return str(text or "not given").replace(f"<{FENCE}>", f"[{FENCE}]").replace(f"</{FENCE}>", f"[/{FENCE}]")


def build_messages(state: DiagnosisState, problems: list[str] | None = None) -> list[dict[str, str]]:
    """Chat messages (OpenAI-style dicts) for the diagnosis prompt, with feedback after a rejected draft."""
    system, user = load_prompt("diagnosis").split("<!-- user -->")
    system = system.replace("<!-- system -->", "").strip()
    cls = state.get("classification")
    if cls is None:
        model_result = "The classifier failed on this clip; no model result is available."
    else:
        model_result = json.dumps({k: cls.get(k) for k in ("label", "label_name", "confidence", "probabilities",
                                                            "abstained", "abstain_threshold", "source")}, indent=1)
    frames = "\n".join(f"- {frame_when(f.get('index'), f.get('time_s'))}: {f.get('reason', '')}"
                       for f in state.get("key_frames") or []) or "none"
    evidence = "\n\n".join(f"[{p['id']}] {p.get('title', '')} — {p.get('section', '')} (source: {p.get('source', '')})\n{p.get('text', '')}"
                           for p in state.get("passages") or []) or "No passages were retrieved: cite nothing."
    case = state.get("case") or {}
    schema = json.dumps(DiagnosisDraft.model_json_schema(), indent=1)
    messages = [
        {"role": "system", "content": system.replace("{schema}", schema)},
        {"role": "user", "content": user.strip().format(
            model_result=model_result, key_frames=frames, evidence=evidence,
            **{k: _fence(case.get(k)) for k in ("chief_complaint", "physical_exam", "additional_info", "age", "sex")})},
    ]
    if problems:
        messages.append({"role": "user", "content": "Your previous answer was rejected: " + "; ".join(problems)
                         + ". Answer again with the complete JSON object only."})
    return messages


def make_compose(backend: Any):
    def compose(state: DiagnosisState) -> dict[str, Any]:
        """The LLM writes the structured diagnosis; with no LLM configured the rules write it."""
        if backend is None:
            return _rules(state)
        attempts = state.get("attempts", 0) + 1
        try:
            draft = backend.generate_structured(build_messages(state, state.get("problems")), DiagnosisDraft)
            if not isinstance(draft, DiagnosisDraft):
                draft = DiagnosisDraft.model_validate(draft if isinstance(draft, dict) else draft.model_dump())
        except Exception as exc:  # LLMError and anything else a backend raises: recorded, then retried
            message = f"attempt {attempts}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            return {"attempts": attempts, "draft": None, "draft_by": "llm",
                    "problems": [f"the answer could not be used ({message})"],
                    **_error("compose", message)}
        return {"attempts": attempts, "draft": draft.model_dump(), "draft_by": "llm", "problems": []}
    return compose


def _rules(state: DiagnosisState) -> dict[str, Any]:
    draft = rules_draft(state.get("classification"), state.get("key_frames") or [], state.get("case") or {},
                        state.get("passages") or [])
    return {"draft": draft.model_dump(), "draft_by": "rules", "problems": []}


def fallback(state: DiagnosisState) -> dict[str, Any]:
    """After the bounded LLM retries: the deterministic rules write the report instead."""
    return {**_rules(state), "notes": [f"The LLM's draft was rejected after {state.get('attempts', 0)} attempt(s); "
                                       "this report was written by the no-LLM rules instead."]}


def _clean_id(cid: str) -> str:
    return cid.strip().strip("[]").strip()


def check_draft(draft: dict[str, Any] | None, passage_ids: set[str],
                classification: dict[str, Any] | None) -> tuple[dict[str, Any] | None, list[str], list[str]]:
    """Check a draft: (fixed draft, problems that reject it, notes). Unknown citations are dropped."""
    if draft is None:
        return None, ["no draft was produced"], []
    try:
        d = DiagnosisDraft.model_validate(draft)
    except ValidationError as exc:
        return None, [f"the draft does not match the schema: {exc.errors()[0]['msg']}"], []
    problems, notes, dropped = [], [], []

    def keep(ids: list[str]) -> list[str]:
        out = []
        for raw in ids:
            cid = _clean_id(raw)
            if cid in passage_ids:
                out.append(cid)
            else:
                dropped.append(cid)
        return list(dict.fromkeys(out))

    for item in [*d.preliminary_diagnosis, *d.recommended_follow_up]:
        item.citations = keep(item.citations)
    top = keep(d.citations)
    d.citations = list(dict.fromkeys([*top, *(c for i in [*d.preliminary_diagnosis, *d.recommended_follow_up] for c in i.citations)]))
    if dropped:
        notes.append("Dropped citations that refer to no retrieved passage: " + ", ".join(sorted(set(dropped))))
    if not d.preliminary_diagnosis or any(not x.diagnosis.strip() or not x.reasoning.strip() for x in d.preliminary_diagnosis):
        problems.append("the preliminary diagnosis section is missing or has an empty diagnosis or reasoning")
    if not d.justification.strip():
        problems.append("the justification section is empty")
    if not d.recommended_follow_up or any(not x.examination.strip() for x in d.recommended_follow_up):
        problems.append("the recommended follow-up section is missing or has an empty examination")
    if classification and classification.get("source") == "model" and classification.get("abstained"):
        certain = [x.diagnosis for x in d.preliminary_diagnosis if x.likelihood == "high"]
        if certain:
            problems.append("the classifier abstained, so no differential may have likelihood 'high' "
                            f"(got it for: {', '.join(certain)}); say the classifier is uncertain")
    return d.model_dump(), problems, notes


def check(state: DiagnosisState) -> dict[str, Any]:
    """Validate the draft against the evidence and the rules of the prompt."""
    if state.get("draft") is None:  # compose already recorded why
        return {"problems": state.get("problems") or ["no draft was produced"]}
    ids = {p["id"] for p in state.get("passages") or []}
    draft, problems, notes = check_draft(state.get("draft"), ids, state.get("classification"))
    update: dict[str, Any] = {"draft": draft, "problems": problems, "notes": [] if problems else notes}
    if problems and state.get("draft_by") == "llm":
        update["errors"] = [{"node": "check", "message": f"attempt {state.get('attempts', 0)} rejected: " + "; ".join(problems)}]
    return update


def route_after_check(state: DiagnosisState) -> str:
    """done when the draft passed (or the rules wrote it); retry the LLM while attempts remain; else fall back."""
    if not state.get("problems") or state.get("draft_by") == "rules":
        return "done"
    return "compose" if state.get("attempts", 0) < MAX_LLM_ATTEMPTS else "fallback"


def _relative(path: str | None, base: Path) -> str | None:
    if not path:
        return path
    try:
        return str(Path(path).resolve().relative_to(base.resolve()))
    except ValueError:
        return path


def make_done(backend: Any):
    def done(state: DiagnosisState) -> dict[str, Any]:
        """Assemble the Report and write report.json/.md/.html into the output folder."""
        out = Path(state["out_dir"])
        info = backend.describe() if backend is not None else {"backend": "none", "model": None}
        cls = state.get("classification")
        frames = [{**f, "frame_path": _relative(f.get("frame_path"), out), "overlay_path": _relative(f.get("overlay_path"), out)}
                  for f in state.get("key_frames") or []]
        report = Report(
            case_id=state["case_id"], classification=cls, key_frames=frames, evidence=state.get("passages") or [],
            **(state.get("draft") or NO_DRAFT.model_dump()),
            backend={**info, "written_by": state.get("draft_by", "rules")},
            errors=state.get("errors") or [], notes=state.get("notes") or [],
            checkpoint=((cls or {}).get("checkpoint") or {}).get("id"),
        )
        write_report(report, out)
        return {"report": report.model_dump(mode="json")}
    return done
