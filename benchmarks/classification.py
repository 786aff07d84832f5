"""Classification benchmark: CTU-Net, two baselines and three CTU-Net ablations on the same folds.

Every model is trained with the same recipe and budget (``models.training.train``) on the same
patient-grouped, stratified, seeded folds, and evaluated on the held-out patients. Per model:
accuracy, balanced accuracy, macro-F1 and per-class recall as mean ± std over folds, the
confusion matrix summed over folds, parameters, training time per fold and CPU inference time
per clip at batch 1 (forward only, and with decoding the file). Fold results are appended to a
progress file as they finish, so an interrupted run resumes where it stopped.
"""
from __future__ import annotations

import hashlib
import json
import statistics
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CLASSES = ("covid19", "bacterial_pneumonia", "normal")


@dataclass(frozen=True)
class ModelSpec:
    """One benchmarked model: registry architecture plus config overrides."""

    key: str
    short: str
    title: str
    arch: str
    config: dict[str, Any] = field(default_factory=dict)


MODELS: dict[str, ModelSpec] = {m.key: m for m in (
    ModelSpec("ctunet", "CTU-Net", "CTU-Net, all three paths (spatial, temporal, frequency)", "ctunet"),
    ModelSpec("frame_cnn", "Frame CNN", "2-D CNN per frame, logits averaged over the clip (POCOVID-Net approach)",
              "frame_cnn"),
    ModelSpec("cnn3d", "3-D CNN", "X3D-like 3-D CNN over the whole clip", "cnn3d"),
    ModelSpec("ctunet_no_spatial", "CTU-Net − spatial", "CTU-Net without its spatial path", "ctunet",
              {"paths": ("temporal", "frequency")}),
    ModelSpec("ctunet_no_temporal", "CTU-Net − temporal", "CTU-Net without its temporal path", "ctunet",
              {"paths": ("spatial", "frequency")}),
    ModelSpec("ctunet_no_frequency", "CTU-Net − frequency", "CTU-Net without its frequency path", "ctunet",
              {"paths": ("spatial", "temporal")}),
)}

REFERENCES = (
    ("Auto-US CTU-Net", "CUV, 5 classes (breast, gallbladder, lung)", "accuracy 86.73%",
     "Auto-US, arXiv 2511.07748"),
    ("POCOVID-Net", "POCUS, 3 classes, 5-fold CV", "accuracy 0.89, balanced accuracy 0.82",
     "Born et al. 2021"),
    ("USCL", "POCUS, after ultrasound pre-training", "accuracy ≈ 94%", "Chen et al., MICCAI 2021"),
)


@dataclass
class BenchConfig:
    """The benchmark's data, folds, input, recipe and budget (the same for every model)."""

    manifest: str
    videos: str
    classes: tuple[str, ...] = DEFAULT_CLASSES
    models: tuple[str, ...] = tuple(MODELS)
    folds: int = 5
    seed: int = 0
    num_frames: int = 16
    image_size: int = 64
    width: int | None = None
    epochs: int = 15
    batch_size: int = 8
    jobs: int = 1
    threads: int = 1
    timing_clips: int = 3
    cache_dir: str | None = None  # None: models.data's default (<repo>/.cache/clips)
    progress_dir: str = str(REPO / ".cache" / "bench")

    def run_key(self) -> str:
        """Hash of everything that changes fold results (not jobs, threads or paths of caches)."""
        d = asdict(self)
        for k in ("jobs", "threads", "cache_dir", "progress_dir", "models"):
            d.pop(k)
        d["manifest"] = hashlib.sha256(Path(self.manifest).read_bytes()).hexdigest()[:16]
        d["videos"] = str(Path(self.videos).resolve())
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=list).encode()).hexdigest()[:12]


class ModelBuilder:
    """Picklable ``build_fn(num_classes, spec)`` for the trainer."""

    def __init__(self, spec: ModelSpec, width: int | None) -> None:
        self.spec, self.width = spec, width

    def __call__(self, num_classes: int, input_spec: Any) -> Any:
        from models.ctunet import build_model

        config = {"num_classes": num_classes, "num_frames": input_spec.num_frames,
                  "image_size": input_spec.image_size, **self.spec.config}
        if self.width is not None:
            config["width"] = self.width
        return build_model(self.spec.arch, config)


def _frames_fn(cfg: BenchConfig, spec: Any) -> Any:
    from models.data import ClipCache

    return ClipCache(spec, cfg.cache_dir).frames


def _train_config(cfg: BenchConfig) -> Any:
    from models.training import TrainConfig

    return TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, seed=cfg.seed)


def run_fold(cfg: BenchConfig, key: str, fold: int, train_recs: list, test_recs: list) -> dict[str, Any]:
    """Train one model on one fold's training part; metrics and timings on its held-out part."""
    import torch

    from models.ctunet import count_parameters
    from models.metrics import classification_metrics
    from models.training import predict_probabilities, train
    from models.augment import eval_frames
    from models.video import InputSpec, load_clip, normalize

    torch.set_num_threads(cfg.threads)
    spec = InputSpec(num_frames=cfg.num_frames, image_size=cfg.image_size)
    frames_fn = _frames_fn(cfg, spec)
    build = ModelBuilder(MODELS[key], cfg.width)
    t0 = time.perf_counter()
    model = train(build, train_recs, cfg.classes, spec, frames_fn, _train_config(cfg))
    train_s = time.perf_counter() - t0
    probs = predict_probabilities(model, test_recs, spec, frames_fn)
    metrics = classification_metrics([r.label for r in test_recs], probs.argmax(1).tolist(), cfg.classes)
    forward_ms, with_decode_ms = [], []
    with torch.inference_mode():
        for rec in test_recs[: max(1, cfg.timing_clips)]:
            x = normalize(eval_frames(frames_fn(rec), spec.num_frames), spec).unsqueeze(0)
            model(x)  # warm-up
            t0 = time.perf_counter()
            model(x)
            forward_ms.append(1000 * (time.perf_counter() - t0))
            t0 = time.perf_counter()
            model(load_clip(rec.path, spec)[0].unsqueeze(0))
            with_decode_ms.append(1000 * (time.perf_counter() - t0))
    return {"model": key, "fold": fold, "metrics": metrics, "train_s": train_s,
            "forward_ms": statistics.median(forward_ms), "with_decode_ms": statistics.median(with_decode_ms),
            "params": count_parameters(model), "n_train": len(train_recs), "n_test": len(test_recs)}


def _load_progress(path: Path) -> dict[tuple[str, int], dict[str, Any]]:
    done: dict[tuple[str, int], dict[str, Any]] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                done[(r["model"], r["fold"])] = r
    return done


def run_classification(cfg: BenchConfig, log: Any = print) -> dict[str, Any]:
    """Run (or resume) every model on every fold and summarise; returns the JSON-ready result."""
    from models.data import grouped_stratified_kfold, read_manifest
    from models.errors import VideoError
    from models.video import InputSpec

    unknown = [m for m in cfg.models if m not in MODELS]
    if unknown:
        raise ValueError(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(MODELS)}")
    data = read_manifest(Path(cfg.manifest), Path(cfg.videos), classes=list(cfg.classes))
    spec = InputSpec(num_frames=cfg.num_frames, image_size=cfg.image_size)
    frames_fn = _frames_fn(cfg, spec)
    records, skipped = [], list(data.skipped)
    t0 = time.perf_counter()
    for rec in data.records:  # fill the shared decode cache once, before any training
        try:
            frames_fn(rec)
            records.append(rec)
        except VideoError as exc:  # one bad clip never stops the benchmark
            log(f"skipped: {exc}")
            skipped.append(str(exc))
    log(f"decode cache ready: {len(records)} clips in {time.perf_counter() - t0:.0f} s")
    splits = grouped_stratified_kfold(records, cfg.folds, cfg.seed)
    progress = Path(cfg.progress_dir) / f"classification_{cfg.run_key()}.jsonl"
    progress.parent.mkdir(parents=True, exist_ok=True)
    done = _load_progress(progress)
    tasks = [(k, f) for f in range(len(splits)) for k in cfg.models if (k, f) not in done]
    log(f"{len(done)} fold results reused from {progress}; {len(tasks)} to run with {cfg.jobs} job(s)")

    def record(r: dict[str, Any]) -> None:
        done[(r["model"], r["fold"])] = r
        with progress.open("a") as fh:
            fh.write(json.dumps(r) + "\n")
        log(f"{r['model']} fold {r['fold']}: accuracy {r['metrics']['accuracy']:.3f}, "
            f"balanced {r['metrics']['balanced_accuracy']:.3f}, trained in {r['train_s']:.0f} s")

    def args(k: str, f: int) -> tuple:
        tr, te = splits[f]
        return cfg, k, f, [records[i] for i in tr], [records[i] for i in te]

    if cfg.jobs <= 1:
        for k, f in tasks:
            record(run_fold(*args(k, f)))
    else:
        with ProcessPoolExecutor(cfg.jobs, mp_context=get_context("spawn")) as pool:
            # record folds as they finish: a failing fold must not lose the later ones already trained
            for fut in as_completed([pool.submit(run_fold, *args(k, f)) for k, f in tasks]):
                record(fut.result())
    return summarize(cfg, records, splits, skipped, done)


def summarize(cfg: BenchConfig, records: list, splits: list, skipped: list,
              done: dict[tuple[str, int], dict[str, Any]]) -> dict[str, Any]:
    """Per-model summaries (mean ± std over folds, pooled confusion, timings) and run metadata."""
    import numpy as np

    from models.metrics import summarize_folds

    def stat(values: list[float]) -> dict[str, float]:
        return {"mean": float(np.mean(values)), "std": float(np.std(values))}

    models: dict[str, Any] = {}
    for key in cfg.models:
        folds = [done[(key, f)] for f in range(len(splits)) if (key, f) in done]
        if not folds:
            continue
        fold_metrics = [r["metrics"] for r in folds]
        models[key] = {
            "short": MODELS[key].short, "title": MODELS[key].title, "arch": MODELS[key].arch,
            "config": dict(MODELS[key].config),
            "params": folds[0]["params"], "folds_done": len(folds),
            "summary": summarize_folds(fold_metrics, cfg.classes),
            "fold_accuracy": [m["accuracy"] for m in fold_metrics],
            "fold_balanced_accuracy": [m["balanced_accuracy"] for m in fold_metrics],
            "confusion": np.sum([m["confusion"] for m in fold_metrics], axis=0).tolist(),
            "train_s_per_fold": stat([r["train_s"] for r in folds]),
            "forward_ms": statistics.median(r["forward_ms"] for r in folds),
            "with_decode_ms": statistics.median(r["with_decode_ms"] for r in folds),
        }
    return {
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()},
        "data": {"clips": len(records), "patients": len({r.patient for r in records}),
                 "per_class": {c: sum(r.label == c for r in records) for c in cfg.classes},
                 "skipped": len(skipped),
                 "fold_sizes": [len(te) for _, te in splits]},
        "models": models,
        "references": [dict(zip(("model", "data", "published", "source"), r)) for r in REFERENCES],
    }


def write_confusions(result: dict[str, Any], out_dir: Path) -> dict[str, str]:
    """One PNG per model of the confusion matrix summed over folds; returns model -> file name."""
    from models.metrics import plot_confusion

    classes = result["config"]["classes"]
    files = {}
    for key, m in result["models"].items():
        path = out_dir / f"confusion_{key}.png"
        plot_confusion(m["confusion"], classes, path, title=f"{m['short']} ({m['folds_done']} folds summed)")
        files[key] = path.name
    return files


def _pm(s: dict[str, float], pct: bool = True) -> str:
    f = 100 if pct else 1
    return f"{f * s['mean']:.1f} ± {f * s['std']:.1f}"


def comparisons(result: dict[str, Any], base: str = "ctunet") -> list[str]:
    """Sentences: paired per-fold differences of CTU-Net against each other model."""
    import numpy as np

    models = result["models"]
    if base not in models:
        return []
    out = []
    for key, m in models.items():
        if key == base or len(m["fold_accuracy"]) != len(models[base]["fold_accuracy"]):
            continue
        d_acc = np.subtract(models[base]["fold_accuracy"], m["fold_accuracy"])
        d_bal = np.subtract(models[base]["fold_balanced_accuracy"], m["fold_balanced_accuracy"])
        wins = int((d_bal > 0).sum())
        out.append(f"- CTU-Net vs {m['short']}: accuracy {100 * d_acc.mean():+.1f} pp (± {100 * d_acc.std():.1f}), "
                   f"balanced accuracy {100 * d_bal.mean():+.1f} pp (± {100 * d_bal.std():.1f}); "
                   f"CTU-Net higher in {wins} of {len(d_bal)} folds.")
    return out


def to_markdown(result: dict[str, Any], figures_dir: str = "benchmarks") -> str:
    """The classification section of docs/benchmarks.md."""
    cfg, data, classes = result["config"], result["data"], result["config"]["classes"]
    lines = [
        "## Classification",
        "",
        f"Data: `{cfg['manifest']}` — {data['clips']} clips of {data['patients']} patients "
        f"({', '.join(f'{c} {n}' for c, n in data['per_class'].items())}); {data['skipped']} manifest rows "
        f"not used (other classes or unreadable). Patient-grouped, stratified {cfg['folds']}-fold cross-validation "
        f"(seed {cfg['seed']}, held-out fold sizes {data['fold_sizes']}), the same folds for every model.",
        "",
        f"Same recipe and budget for all: {cfg['num_frames']} frames × {cfg['image_size']} px, "
        f"{cfg['epochs']} epochs, batch {cfg['batch_size']}, AdamW with warm-up and cosine schedule, label "
        f"smoothing, balanced sampling, ultrasound augmentation (`models.training.TrainConfig` defaults), "
        f"trained from scratch on CPU with {cfg['threads']} thread(s) per process and {cfg['jobs']} process(es). "
        "Metrics are mean ± std over folds (percent).",
        "",
        "| model | params | accuracy | balanced acc. | macro-F1 | "
        + " | ".join(f"recall {c}" for c in classes)
        + " | train s / fold | CPU ms / clip (forward) | CPU ms / clip (with decode) |",
        "| --- | ---: | ---: | ---: | ---: | " + " | ".join("---:" for _ in classes) + " | ---: | ---: | ---: |",
    ]
    for key, m in result["models"].items():
        s = m["summary"]
        recalls = [_pm(s["per_class"][c]["recall"]) if c in s["per_class"] else "–" for c in classes]
        partial = "" if m["folds_done"] == cfg["folds"] else f" ({m['folds_done']}/{cfg['folds']} folds)"
        lines.append(
            f"| {m['short']}{partial} | {m['params']:,} | {_pm(s['accuracy'])} | {_pm(s['balanced_accuracy'])} | "
            f"{_pm(s['macro_f1'])} | " + " | ".join(recalls)
            + f" | {m['train_s_per_fold']['mean']:.0f} | {m['forward_ms']:.1f} | {m['with_decode_ms']:.0f} |")
    lines += ["", "Models: " + "; ".join(f"**{m['short']}**: {m['title']}" for m in result["models"].values())
              + ". All are trained from scratch (no pre-training).", "", "Inference: batch 1, median over held-out clips, after one warm-up; \"with decode\" reads and "
              "preprocesses the file (`models.video.load_clip`) before the forward pass. Training times are wall "
              "time on a machine shared with other work.", ""]
    comp = comparisons(result)
    if comp:
        lines += ["Paired differences over the same folds (mean ± std of the per-fold differences):", "", *comp, ""]
    lines += ["Confusion matrices (rows: true class, columns: predicted), summed over folds:", ""]
    lines += [f"![{m['short']}]({figures_dir}/confusion_{key}.png)" for key, m in result["models"].items()]
    lines += ["", "### Published figures (not measured here)", "",
              "Different data, class sets and protocols: for orientation only, not comparable one to one.", "",
              "| model | data | published | source |", "| --- | --- | --- | --- |"]
    lines += [f"| {r['model']} | {r['data']} | {r['published']} | {r['source']} |" for r in result["references"]]
    return "\n".join(lines) + "\n"


def print_table(result: dict[str, Any]) -> None:
    """The per-model summary as a rich table."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Classification (mean ± std over folds, %)")
    for col in ("model", "params", "accuracy", "balanced acc.", "macro-F1", "train s/fold", "ms/clip"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for m in result["models"].values():
        s = m["summary"]
        table.add_row(m["short"], f"{m['params']:,}", _pm(s["accuracy"]), _pm(s["balanced_accuracy"]),
                      _pm(s["macro_f1"]), f"{m['train_s_per_fold']['mean']:.0f}", f"{m['forward_ms']:.1f}")
    Console().print(table)
