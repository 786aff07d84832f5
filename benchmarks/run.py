"""``python -m benchmarks.run``: run the classification and/or speed benchmark, regenerate docs/benchmarks.md.

Results go to ``<out>.json`` (each part replaces only its own key, so ``--only speed`` keeps
the classification results); the Markdown file is always regenerated whole from that JSON.
``make bench`` runs ``--manifest ../shared/data/pocus/manifest.csv --videos ../shared/data/pocus/videos``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from models.errors import UserError

REPO = Path(__file__).resolve().parents[1]


def build_parser() -> argparse.ArgumentParser:
    from benchmarks.classification import DEFAULT_CLASSES, MODELS
    from benchmarks.speed import PARTS

    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    p.add_argument("--manifest", help="manifest CSV (file,label,patient,...)")
    p.add_argument("--videos", help="folder the manifest's files are in")
    p.add_argument("--only", choices=("all", "classification", "speed"), default="all")
    p.add_argument("--render-only", action="store_true", help="only regenerate the Markdown from the JSON")
    p.add_argument("--out", default=str(REPO / "docs" / "benchmarks.md"),
                   help="Markdown file; the JSON goes next to it, figures into <stem>/")
    c = p.add_argument_group("classification")
    c.add_argument("--classes", default=",".join(DEFAULT_CLASSES))
    c.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of: {', '.join(MODELS)}")
    c.add_argument("--folds", type=int, default=5)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--epochs", type=int, default=15)
    c.add_argument("--train-frames", type=int, default=16, help="frames per clip for the trained models")
    c.add_argument("--train-size", type=int, default=64,
                   help="image side for the trained models (small: the same CPU budget buys more epochs)")
    c.add_argument("--batch-size", type=int, default=8)
    c.add_argument("--jobs", type=int, default=2, help="training processes (one torch thread each by default)")
    c.add_argument("--cache-dir", help="decode cache (default <repo>/.cache/clips)")
    c.add_argument("--progress-dir", default=str(REPO / ".cache" / "bench"),
                   help="where finished folds are kept so an interrupted run resumes")
    s = p.add_argument_group("input and speed")
    s.add_argument("--num-frames", type=int, default=16, help="speed: frames per clip (the app's default)")
    s.add_argument("--image-size", type=int, default=112, help="speed: image side (the app's default)")
    s.add_argument("--width", type=int, help="override every model's width (tiny runs)")
    s.add_argument("--threads", type=int, default=1, help="torch threads per process")
    s.add_argument("--repeats", type=int, default=5, help="timed repetitions per speed measurement")
    s.add_argument("--decode-clips", type=int, default=8, help="mp4 files for the decode benchmark")
    s.add_argument("--checkpoint", help="classifier checkpoint for the pipeline rows (default: bundled)")
    s.add_argument("--cases", help="comma-separated case folders (default: examples/cases/*)")
    s.add_argument("--speed-parts", default=",".join(PARTS),
                   help=f"comma-separated speed parts to measure, of: {', '.join(PARTS)}")
    return p


def run_classification_part(args: argparse.Namespace, figures: Path) -> dict[str, Any]:
    from benchmarks import classification as cl

    cfg = cl.BenchConfig(
        manifest=args.manifest, videos=args.videos, classes=tuple(_split(args.classes)),
        models=tuple(_split(args.models)), folds=args.folds, seed=args.seed, num_frames=args.train_frames,
        image_size=args.train_size, width=args.width, epochs=args.epochs, batch_size=args.batch_size,
        jobs=args.jobs, threads=args.threads, cache_dir=args.cache_dir,
        progress_dir=args.progress_dir)
    unknown = [m for m in cfg.models if m not in cl.MODELS]
    if unknown:
        raise UserError(f"--models: unknown model(s) {', '.join(unknown)}; known: {', '.join(cl.MODELS)}")
    t0 = time.perf_counter()
    result = cl.run_classification(cfg, log=lambda msg: print(f"[classification] {msg}", flush=True))
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    cl.write_confusions(result, figures)
    cl.print_table(result)
    return result


def run_speed_part(args: argparse.Namespace) -> dict[str, Any]:
    from benchmarks import speed

    cfg = speed.SpeedConfig(
        num_frames=args.num_frames, image_size=args.image_size, repeats=args.repeats,
        decode_clips=args.decode_clips, threads=args.threads, checkpoint=args.checkpoint,
        cases=tuple(_split(args.cases)) if args.cases is not None else speed.default_cases(),
        parts=tuple(_split(args.speed_parts)))
    result = speed.run_speed(Path(args.videos) if args.videos else None, cfg).to_dict()
    speed.print_table(result)
    return result


def render(results: dict[str, Any], figures_dir: str) -> str:
    """The whole docs/benchmarks.md from the JSON results."""
    from benchmarks import classification, speed

    lines = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`python -m benchmarks.run --manifest ../shared/data/pocus/manifest.csv "
        "--videos ../shared/data/pocus/videos`); do not edit by hand. Raw numbers: `benchmarks.json` next to "
        "this file. `--only classification|speed` reruns one part and keeps the other.",
        "",
        "Auto-US assists clinicians; these figures describe a research prototype trained on a small public "
        "data set, not a validated diagnostic device.",
        "",
    ]
    for part, module in (("classification", classification), ("speed", speed)):
        if part in results:
            stamp = results.get("generated", {}).get(part, "")
            lines += [module.to_markdown(results[part], figures_dir) if part == "classification"
                      else module.to_markdown(results[part]), "", f"_{part} measured {stamp}_" if stamp else "", ""]
    return "\n".join(lines).rstrip() + "\n"


def _split(text: str | None) -> list[str]:
    return [t.strip() for t in (text or "").split(",") if t.strip()]


def _load_results(path: Path) -> dict[str, Any]:
    """The earlier results JSON, or ``{}`` when there is none; an unreadable one is a one-line error."""
    if not path.is_file():
        return {}
    try:
        results = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot read the earlier results ({exc}); fix or delete it") from None
    if not isinstance(results, dict):
        raise UserError(f"{path}: expected a JSON object of results, got {type(results).__name__}; fix or delete it")
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.out)
    json_path, figures = out.with_suffix(".json"), out.parent / out.stem
    try:
        results = _load_results(json_path)
        if not args.render_only:
            parts = ("classification", "speed") if args.only == "all" else (args.only,)
            if "classification" in parts and not (args.manifest and args.videos):
                raise UserError("classification needs --manifest CSV and --videos DIR")
            for part in parts:
                results[part] = run_classification_part(args, figures) if part == "classification" \
                    else run_speed_part(args)
                results.setdefault("generated", {})[part] = datetime.now(timezone.utc).isoformat(timespec="minutes")
                out.parent.mkdir(parents=True, exist_ok=True)
                json_path.write_text(json.dumps(results, indent=1) + "\n")
        if not results:
            raise UserError(f"{json_path}: no results to render; run a benchmark first")
        out.write_text(render(results, figures.name))
    except UserError as exc:
        print(f"benchmarks: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out} and {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
