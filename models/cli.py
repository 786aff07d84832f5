"""``autous train``, ``cv``, ``evaluate`` and ``classify`` (handlers import torch lazily)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

DEFAULT_EPOCHS = 30


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add this package's subcommands to the root parser."""
    data = argparse.ArgumentParser(add_help=False)
    data.add_argument("--manifest", metavar="CSV", help="manifest CSV (file,label,patient,...)")
    data.add_argument("--videos", metavar="DIR", help="folder the manifest's file names are relative to "
                                                      "(default: the manifest's folder)")
    data.add_argument("--data", metavar="DIR", help="instead of a manifest: a folder of class sub-folders")
    data.add_argument("--classes", metavar="A,B,C", help="comma-separated classes to use (default: all labels)")
    fit = argparse.ArgumentParser(add_help=False)
    fit.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS, metavar="N", help=f"epochs (default {DEFAULT_EPOCHS})")
    fit.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    fit.add_argument("--arch", default="ctunet", choices=("ctunet", "frame_cnn", "cnn3d"),
                     help="architecture (default ctunet)")
    fit.add_argument("--threads", type=int, default=None, metavar="N", help="torch CPU threads")

    t = sub.add_parser("train", parents=[data, fit], help="train a clip classifier and save a checkpoint",
                       description="Train CTU-Net (or a baseline) on all given clips and save a checkpoint with "
                                   "its metadata. With --cv-folds K, first run patient-grouped K-fold CV and store "
                                   "its figures and the abstention threshold chosen from it in the checkpoint.")
    t.add_argument("--out", required=True, metavar="CKPT", help="checkpoint file to write")
    t.add_argument("--cv-folds", type=int, default=0, metavar="K", help="run K-fold CV first (default: no CV)")
    t.add_argument("--name", default=None, help="checkpoint name (default: the output file's stem)")
    t.set_defaults(handler=train_command)

    c = sub.add_parser("cv", parents=[data, fit], help="patient-grouped K-fold cross-validation",
                       description="Patient-grouped, class-stratified K-fold cross-validation: mean ± std of "
                                   "accuracy, balanced accuracy, macro-F1 and per-class recall.")
    c.add_argument("--folds", type=int, default=5, metavar="K", help="number of folds (default 5)")
    c.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    c.set_defaults(handler=cv_command)

    e = sub.add_parser("evaluate", parents=[data], help="evaluate a checkpoint on labelled clips",
                       description="Accuracy, balanced accuracy, macro-F1, per-class P/R/F1 and the confusion "
                                   "matrix of a checkpoint on labelled clips. Rows whose label is not among the "
                                   "checkpoint's classes are skipped and counted; unreadable clips are reported.")
    e.add_argument("--checkpoint", default=None, metavar="CKPT", help="checkpoint (default: bundled)")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.add_argument("--confusion-png", default=None, metavar="PATH", help="also write the confusion matrix as PNG")
    e.set_defaults(handler=evaluate_command)

    k = sub.add_parser("classify", help="classify clips (videos, GIFs, frame folders, images)",
                       description="Classify each input with CTU-Net. Abstains (label still shown) when the "
                                   "confidence is under the checkpoint's threshold. An assistant, not a diagnosis.")
    k.add_argument("paths", nargs="+", metavar="PATH", help="clip files or frame folders")
    k.add_argument("--checkpoint", default=None, metavar="CKPT", help="checkpoint (default: bundled)")
    k.add_argument("--json", action="store_true", help="one JSON line per input")
    k.set_defaults(handler=classify_command)


def _err(message: str) -> None:
    print(f"autous: {message}", file=sys.stderr)


def _load_data(args: argparse.Namespace) -> Any:
    """ManifestData (all labels) from --manifest/--videos or --data (raises ManifestError / UserError)."""
    from models.data import read_class_folders, read_manifest
    from models.errors import UserError

    if bool(args.manifest) == bool(args.data):
        raise UserError("give either --manifest CSV (with --videos DIR) or --data DIR")
    data = read_class_folders(args.data) if args.data else read_manifest(args.manifest, args.videos)
    for where, why in data.skipped:
        _err(f"skipped {where}: {why}")
    return data


def _classes_arg(args: argparse.Namespace) -> list[str] | None:
    if not args.classes:
        return None
    from models.data import canonical_label

    return [canonical_label(c) for c in args.classes.split(",") if c.strip()]


def _progress(console: Any) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console, transient=False)


def _prepare(args: argparse.Namespace, folds: int = 0) -> dict[str, Any]:
    """Records, classes, spec and cached frames for train/cv; unreadable clips are reported and dropped."""
    import torch
    from rich.console import Console

    from models.data import ClipCache
    from models.errors import UserError
    from models.video import InputSpec

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.epochs < 1:
        raise UserError(f"--epochs must be >= 1, got {args.epochs}")
    data = _load_data(args)
    classes = _classes_arg(args) or sorted({r.label for r in data.records})
    selected = [r for r in data.records if r.label in classes]
    _check_classes(args, classes, selected)
    if folds:
        _splits(selected, folds, args.seed)  # fail before decoding when K folds are impossible
    console = Console(stderr=True)
    spec = InputSpec()
    cache = ClipCache(spec)
    with _progress(console) as bar:
        task = bar.add_task("decoding clips", total=len(selected), info="")
        records, frames, failed = cache.load_all(selected, progress=lambda r: bar.advance(task))
    for _, message in failed:
        _err(f"skipped: {message}")
    _check_classes(args, classes, records)
    by_path = {r.path: f for r, f in zip(records, frames)}
    return {"records": records, "classes": classes, "spec": spec, "frames_fn": lambda r: by_path[r.path],
            "console": console, "skipped": len(data.skipped), "other_labels": len(data.records) - len(selected),
            "failed": failed}


def _check_classes(args: argparse.Namespace, classes: list[str], records: list[Any]) -> None:
    from models.errors import UserError

    present = {r.label for r in records}
    absent = [c for c in classes if c not in present]
    if absent or len(classes) < 2:
        raise UserError(f"{args.manifest or args.data}: need clips of at least two classes; "
                        f"no usable clips for: {', '.join(absent) or 'a second class'}")


def _build_fn(arch: str) -> Any:
    from models.ctunet import build_model

    def build(num_classes: int, spec: Any) -> Any:
        return build_model(arch, {"num_classes": num_classes, "num_frames": spec.num_frames,
                                  "image_size": spec.image_size})

    return build


def _splits(records: list[Any], folds: int, seed: int) -> list[tuple[list[int], list[int]]]:
    import warnings

    from models.data import grouped_stratified_kfold

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return grouped_stratified_kfold(records, folds, seed=seed)


def _run_cv(prep: dict[str, Any], args: argparse.Namespace, folds: int) -> Any:
    from models.data import fold_warnings
    from models.training import TrainConfig, cross_validate

    records, console = prep["records"], prep["console"]
    for message in fold_warnings(records, folds):
        _err(f"warning: {message}")
    splits = _splits(records, folds, args.seed)
    cfg = TrainConfig(epochs=args.epochs, seed=args.seed)
    with _progress(console) as bar:
        fold_task = bar.add_task("cross-validation folds", total=folds, info="")
        epoch_task = bar.add_task("epochs", total=args.epochs, info="")

        def on_fold(k: int, n: int) -> Any:
            bar.update(fold_task, completed=k, info=f"fold {k + 1}/{n}")
            bar.reset(epoch_task, total=args.epochs)

            def on_epoch(epoch: int, total: int, loss: float, acc: float) -> None:
                bar.update(epoch_task, completed=epoch, info=f"loss {loss:.3f} train acc {acc:.2f}")
                if epoch == total:
                    bar.update(fold_task, completed=k + 1)
            return on_epoch

        result = cross_validate(_build_fn(args.arch), records, prep["classes"], prep["spec"], prep["frames_fn"],
                                splits, cfg, on_fold=on_fold)
    return result, cfg


def _cv_table(result: Any, classes: list[str], title: str) -> Any:
    from rich.table import Table

    s = result.summary
    table = Table("metric", "mean ± std", *[f"fold {f['fold'] + 1}" for f in result.folds], title=title)
    for m in ("accuracy", "balanced_accuracy", "macro_f1"):
        table.add_row(m, f"{s[m]['mean']:.3f} ± {s[m]['std']:.3f}", *[f"{f[m]:.3f}" for f in result.folds])
    for c in classes:
        if c in s["per_class"]:
            r = s["per_class"][c]["recall"]
            table.add_row(f"recall {c}", f"{r['mean']:.3f} ± {r['std']:.3f}",
                          *[f"{f['per_class'][c]['recall']:.3f}" if f["per_class"][c]["support"] else "-"
                            for f in result.folds])
    return table


def cv_command(args: argparse.Namespace) -> int:
    """``autous cv``: patient-grouped K-fold cross-validation."""
    from rich.console import Console

    prep = _prepare(args, args.folds)
    result, cfg = _run_cv(prep, args, args.folds)
    out = {**result.to_dict(), "classes": prep["classes"], "n": len(prep["records"]), "arch": args.arch,
           "recipe": cfg.to_dict(), "skipped": prep["skipped"] + len(prep["failed"])}
    if args.json:
        print(json.dumps(out))
        return 0
    console = Console()
    console.print(_cv_table(result, prep["classes"], f"{args.folds}-fold patient-grouped CV, {out['n']} clips"))
    a = result.abstain
    console.print(f"Abstention threshold from CV: {a['threshold']:.3f} (keeps {a['coverage']:.0%} of clips, "
                  f"accuracy on kept {a['selective_accuracy']:.3f})")
    return 0


def train_command(args: argparse.Namespace) -> int:
    """``autous train``: fit on all clips, optionally after K-fold CV, and save the checkpoint."""
    from rich.console import Console

    from models.checkpoint import CheckpointMeta, save_checkpoint
    from models.ctunet import count_parameters
    from models.training import TrainConfig, train

    prep = _prepare(args, args.cv_folds)
    records, classes, console = prep["records"], prep["classes"], prep["console"]
    metrics: dict[str, Any] = {}
    threshold = 0.5
    if args.cv_folds:
        result, _ = _run_cv(prep, args, args.cv_folds)
        console.print(_cv_table(result, classes, f"{args.cv_folds}-fold patient-grouped CV"))
        metrics = {"cv": {"folds": args.cv_folds, "seed": args.seed, **result.summary},
                   "cv_pooled": result.pooled, "cv_per_fold": result.folds, "abstain": result.abstain}
        threshold = result.abstain["threshold"]
    else:
        metrics = {"note": "no cross-validation run (--cv-folds 0); abstain threshold is the default 0.5"}
    cfg = TrainConfig(epochs=args.epochs, seed=args.seed)
    with _progress(console) as bar:
        task = bar.add_task("training on all clips", total=args.epochs, info="")
        model = train(_build_fn(args.arch), records, classes, prep["spec"], prep["frames_fn"], cfg,
                      on_epoch=lambda e, n, loss, acc: bar.update(
                          task, completed=e, info=f"loss {loss:.3f} train acc {acc:.2f}"))
    counts = {c: sum(r.label == c for r in records) for c in classes}
    source = args.manifest or args.data
    meta = CheckpointMeta(
        name=args.name or Path(args.out).stem, arch=args.arch, classes=classes,
        input_spec=prep["spec"].to_dict(), config=_model_config(model), recipe=cfg.to_dict(),
        data={"source": source, "clips": len(records), "patients": len({r.patient for r in records}),
              "per_class": counts, "other_labels_left_out": prep["other_labels"],
              "skipped_rows": prep["skipped"], "unreadable": len(prep["failed"])},
        metrics={**metrics, "parameters": count_parameters(model)}, abstain_threshold=threshold,
    )
    meta = save_checkpoint(args.out, model, meta)
    Console().print(f"saved {args.out} (id {meta.id}, {len(records)} clips, classes {', '.join(classes)}, "
                    f"abstain threshold {threshold:.3f})")
    return 0


def _model_config(model: Any) -> dict[str, Any]:
    """The full architecture config of a built model (CTU-Net and the baselines keep ``.config``)."""
    return model.config.to_dict()


def evaluate_command(args: argparse.Namespace) -> int:
    """``autous evaluate``: metrics of a checkpoint on labelled clips."""
    from rich.console import Console
    from rich.table import Table

    from models.errors import UserError
    from models.inference import get_classifier
    from models.metrics import classification_metrics, plot_confusion

    data = _load_data(args)
    clf = get_classifier(args.checkpoint)
    selected = [r for r in data.records if r.label in clf.classes]
    truth, pred, failed = [], [], []
    for record in selected:
        try:
            p = clf.predict(record.path)
        except UserError as exc:
            failed.append((str(record.path), str(exc)))
            _err(f"skipped: {exc}")
            continue
        truth.append(record.label)
        pred.append(p.label)
    if not truth:
        raise UserError(f"{args.manifest or args.data}: no clip could be evaluated")
    m = classification_metrics(truth, pred, clf.classes)
    m["classes"] = clf.classes
    m["checkpoint"] = {"id": clf.meta.id, "name": clf.meta.name}
    m["skipped"] = {"label_not_in_checkpoint": len(data.records) - len(selected),
                    "rows_unusable": len(data.skipped), "unreadable": len(failed)}
    if args.confusion_png:
        plot_confusion(m["confusion"], clf.classes, args.confusion_png, title=f"{clf.meta.name} (n={m['n']})")
    if args.json:
        print(json.dumps(m))
        return 0
    console = Console()
    table = Table("class", "precision", "recall", "F1", "support", title=f"{clf.meta.name} on {m['n']} clips")
    for c, v in m["per_class"].items():
        table.add_row(c, f"{v['precision']:.3f}", f"{v['recall']:.3f}", f"{v['f1']:.3f}", str(v["support"]))
    console.print(table)
    console.print(f"accuracy {m['accuracy']:.3f}  balanced accuracy {m['balanced_accuracy']:.3f}  "
                  f"macro-F1 {m['macro_f1']:.3f}")
    conf = Table("true \\ predicted", *clf.classes, title="confusion matrix")
    for c, row in zip(clf.classes, m["confusion"]):
        conf.add_row(c, *map(str, row))
    console.print(conf)
    s = m["skipped"]
    console.print(f"skipped: {s['label_not_in_checkpoint']} rows with other labels, {s['rows_unusable']} unusable "
                  f"rows, {s['unreadable']} unreadable clips")
    return 0


def classify_command(args: argparse.Namespace) -> int:
    """``autous classify``: one result per input; exit 1 if any input failed."""
    from rich.console import Console
    from rich.table import Table

    from models.errors import UserError
    from models.inference import get_classifier

    clf = get_classifier(args.checkpoint)
    results: list[dict[str, Any]] = []
    for path in args.paths:
        try:
            row = clf.predict(path).to_dict()
        except UserError as exc:
            row = {"path": path, "error": str(exc)}
        results.append(row)
        if args.json:
            print(json.dumps(row), flush=True)
    failed = sum("error" in r for r in results)
    if not args.json:
        console = Console()
        table = Table("input", "label", "confidence", "probabilities",
                      title=f"CTU-Net {clf.meta.name} (abstains under {clf.abstain_threshold:.2f})")
        for r in results:
            name = Path(r["path"]).name or r["path"]
            if "error" in r:
                table.add_row(name, "[red]error[/red]", "-", f"[red]{r['error']}[/red]")
                continue
            label = f"{r['label']}\n[yellow]abstained: uncertain[/yellow]" if r["abstained"] else r["label"]
            probs = ", ".join(f"{c} {p:.2f}" for c, p in r["probabilities"].items())
            table.add_row(name, label, f"{r['confidence']:.3f}", probs)
        console.print(table)
        console.print("An assistant's estimate, not a diagnosis.")
    return 1 if failed else 0
