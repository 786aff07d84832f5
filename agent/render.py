"""Render a Report as Markdown and as one self-contained HTML page (images inlined as base64)."""
from __future__ import annotations

import base64
import html
from pathlib import Path

from agent.report import Report, frame_when


def _cls_items(report: Report) -> list[str]:
    c = report.classification
    if c is None:
        return ["No classification: the clip could not be classified (see errors)."]
    source = "the CTU-Net classifier" if c.source == "model" else "given by the user (classifier skipped)"
    items = [f"Label: {c.label_name} ({c.label}), {source}"]
    if c.confidence is not None:
        items.append(f"Confidence: {c.confidence:.1%}" + (" — the classifier abstained (uncertain)" if c.abstained else ""))
    if c.probabilities:
        probs = ", ".join(f"{k} {v:.1%}" for k, v in sorted(c.probabilities.items(), key=lambda kv: -kv[1]))
        items.append(f"Probabilities: {probs}")
    return items


def _written_by(report: Report) -> str:
    b = report.backend or {}
    if report.written_by_llm:
        return f"Written by an LLM ({b.get('backend')}: {b.get('model')}), checked against the evidence."
    return "Written without an LLM: deterministic, guideline-grounded rules."


def _cites(ids: list[str]) -> str:
    return " " + " ".join(f"[{i}]" for i in ids) if ids else ""


def render_markdown(report: Report) -> str:
    """The report as Markdown (key frames referenced by relative path)."""
    out = [f"# Auto-US report: {report.case_id}", "", f"_{_written_by(report)}_", "", "## Classification", *(f"- {i}" for i in _cls_items(report)), ""]
    if report.key_frames:
        out += ["## Key frames", ""]
        for f in report.key_frames:
            out.append(f"- #{f.rank}: {frame_when(f.index, f.time_s)} (score {f.score:.3f}) — {f.reason}")
            if f.frame_path:
                out.append(f"  ![frame {f.index}]({f.frame_path})" + (f" ![overlay {f.index}]({f.overlay_path})" if f.overlay_path else ""))
        out.append("")
    out += ["## Preliminary diagnosis", ""]
    for i, d in enumerate(report.preliminary_diagnosis, 1):
        out.append(f"{i}. **{d.diagnosis}** (likelihood: {d.likelihood}) — {d.reasoning}{_cites(d.citations)}")
    out += ["", "## Justification", "", report.justification, "", "## Recommended follow-up", ""]
    for f in report.recommended_follow_up:
        out.append(f"- **{f.examination}** — {f.reason}{_cites(f.citations)}")
    out += ["", "## Evidence", ""]
    for p in report.evidence:
        out.append(f"- [{p.id}] {p.title} — {p.section} (source: {p.source})")
    if report.errors or report.notes:
        out += ["", "## Errors and notes", ""]
        out += [f"- error in {e.node}: {e.message}" for e in report.errors]
        out += [f"- {n}" for n in report.notes]
    out += ["", "---", "", f"_{report.disclaimer}_", "", f"Generated {report.generated_at}."]
    return "\n".join(out) + "\n"


def _img(path: str | None, base_dir: Path, alt: str) -> str:
    if not path:
        return ""
    p = Path(path) if Path(path).is_absolute() else base_dir / path
    try:
        data = base64.b64encode(p.read_bytes()).decode("ascii")
    except OSError:
        return f'<span class="missing">({html.escape(alt)}: image missing)</span>'
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{font-size:1.15em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
.by{color:#555;font-style:italic}.warn{background:#fff4e5;border-left:4px solid #f0a020;padding:.5em 1em}
.frames{display:flex;flex-wrap:wrap;gap:1em}.frame{border:1px solid #ddd;padding:.5em;width:260px;font-size:.85em}
.frame img{width:120px;height:auto;image-rendering:pixelated;margin-right:4px}
.cite{color:#1a5fb4;font-size:.85em}.disclaimer{color:#555;font-size:.9em;border-top:1px solid #ddd;padding-top:1em}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.2em .6em;text-align:left}
"""


def render_html(report: Report, base_dir: Path) -> str:
    """The report as one HTML page with inline CSS and base64-embedded key frames and overlays."""
    e = html.escape

    def cites(ids: list[str]) -> str:
        return f' <span class="cite">{e(_cites(ids))}</span>' if ids else ""

    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Auto-US report: {e(report.case_id)}</title>",
             f"<style>{_CSS}</style></head><body>", f"<h1>Auto-US report: {e(report.case_id)}</h1>",
             f"<p class='by'>{e(_written_by(report))}</p>"]
    c = report.classification
    if c is not None and c.abstained:
        parts.append("<p class='warn'>The classifier abstained: its result is uncertain and needs expert review.</p>")
    parts.append("<h2>Classification</h2><ul>" + "".join(f"<li>{e(i)}</li>" for i in _cls_items(report)) + "</ul>")
    if report.key_frames:
        parts.append("<h2>Key frames</h2><div class='frames'>")
        for f in report.key_frames:
            parts.append(f"<div class='frame'>{_img(f.frame_path, base_dir, f'frame {f.index}')}{_img(f.overlay_path, base_dir, f'heat map {f.index}')}"
                         f"<br>#{f.rank}: {frame_when(f.index, f.time_s)}, score {f.score:.3f}<br>{e(f.reason)}</div>")
        parts.append("</div>")
    parts.append("<h2>Preliminary diagnosis</h2><ol>")
    parts += [f"<li><b>{e(d.diagnosis)}</b> (likelihood: {e(d.likelihood)}) — {e(d.reasoning)}{cites(d.citations)}</li>"
              for d in report.preliminary_diagnosis]
    parts.append(f"</ol><h2>Justification</h2><p>{e(report.justification)}</p><h2>Recommended follow-up</h2><ul>")
    parts += [f"<li><b>{e(f.examination)}</b> — {e(f.reason)}{cites(f.citations)}</li>" for f in report.recommended_follow_up]
    parts.append("</ul><h2>Evidence</h2><table><tr><th>id</th><th>passage</th><th>source</th></tr>")
    parts += [f"<tr><td>{e(p.id)}</td><td><b>{e(p.title)}</b> — {e(p.section)}<br>{e(p.text)}</td><td>{e(p.source)}</td></tr>"
              for p in report.evidence]
    parts.append("</table>")
    if report.errors or report.notes:
        parts.append("<h2>Errors and notes</h2><ul>")
        parts += [f"<li>error in {e(x.node)}: {e(x.message)}</li>" for x in report.errors]
        parts += [f"<li>{e(n)}</li>" for n in report.notes]
        parts.append("</ul>")
    parts.append(f"<p class='disclaimer'>{e(report.disclaimer)}<br>Generated {e(report.generated_at)}.</p></body></html>")
    return "\n".join(parts) + "\n"
