"""Speed benchmark: decode, model latency, tools, whole diagnose, batch throughput, memory, CLI start-up.

Every row is measured on this machine when the benchmark runs; a part that is missing or fails
gives a row whose value is ``None`` and whose note says ``n/a: <reason>``. Nothing here asserts
a time. The profile section says where the time of ``autous classify`` and ``autous diagnose``
goes (cProfile of the whole command in a subprocess, and ``-X importtime`` of the CLI start-up).
"""
from __future__ import annotations

import os
import pstats
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PARTS = ("decode", "model", "pipeline", "cli", "profile")
PROJECT_PACKAGES = ("agent", "models", "tools", "knowledge", "prompts", "benchmarks")
LUNG3 = ("covid19", "bacterial_pneumonia", "normal")
QUERIES = ("B-lines and subpleural consolidations in COVID-19", "lobar consolidation with air bronchograms",
           "normal lung ultrasound A-lines and lung sliding", "pleural effusion", "LUS score")


@dataclass
class SpeedConfig:
    """What to measure and how much; the defaults are the ``make bench`` settings."""

    num_frames: int = 16
    image_size: int = 112
    batch: int = 8
    repeats: int = 5
    decode_clips: int = 8
    archs: tuple[str, ...] = ("ctunet", "frame_cnn", "cnn3d")
    threads: int = 1
    checkpoint: str | None = None
    cases: tuple[str, ...] = ()
    parts: tuple[str, ...] = PARTS


@dataclass
class Row:
    """One measurement; ``value`` is ``None`` when it could not be taken (``note`` says why)."""

    group: str
    name: str
    value: float | None
    unit: str
    note: str = ""


@dataclass
class SpeedResult:
    rows: list[Row] = field(default_factory=list)
    profile: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _median_time(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _guard(rows: list[Row], group: str, name: str, unit: str, fn: Callable[[], tuple[float, str] | float]) -> None:
    """Append the row ``fn`` measures, or an ``n/a`` row naming what went wrong."""
    try:
        out = fn()
        value, note = out if isinstance(out, tuple) else (out, "")
        rows.append(Row(group, name, float(value), unit, note))
    except Exception as exc:  # noqa: BLE001 - a missing part makes one row n/a, never the run
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        rows.append(Row(group, name, None, unit, f"n/a: {reason}"))


# --- decode -----------------------------------------------------------------------------------

def _decord_frames(path: Path, indices: list[int] | None) -> int:
    import decord

    vr = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
    wanted = list(range(len(vr))) if indices is None else indices
    for start in range(0, len(wanted), 32):  # bounded memory on long clips
        vr.get_batch(wanted[start:start + 32]).asnumpy()
    return len(wanted)


def _pyav_full(path: Path) -> int:
    import av

    n = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        for frame in container.decode(stream):
            frame.to_ndarray(format="rgb24")
            n += 1
    return n


def decode_rows(videos: list[Path], num_frames: int) -> list[Row]:
    """Sampled vs full decode, decord vs PyAV, on the same mp4 files: ms per clip and frames/s."""
    from models.video import _read_pyav, MAX_SIDE, read_clip, sample_indices

    def total(p: Path) -> int:
        import decord

        return len(decord.VideoReader(str(p), ctx=decord.cpu(0), num_threads=1))

    methods: dict[str, Callable[[Path], int]] = {
        f"decord sampled, T={num_frames}": lambda p: _decord_frames(p, sample_indices(total(p), num_frames).tolist()),
        "decord full": lambda p: _decord_frames(p, None),
        f"PyAV sampled, T={num_frames} (decodes all, converts T)": lambda p: len(_read_pyav(p, num_frames, MAX_SIDE).frames),
        "PyAV full": _pyav_full,
        f"read_clip (project path), T={num_frames}": lambda p: len(read_clip(p, num_frames).frames),
    }
    rows: list[Row] = []
    if not videos:
        return [Row("decode", name, None, "ms/clip", "n/a: no mp4 files") for name in methods]
    for name, method in methods.items():
        def measure(method: Callable[[Path], int] = method) -> tuple[float, str]:
            method(videos[0])  # warm-up: library load, file cache
            t0, frames = time.perf_counter(), 0
            for p in videos:
                frames += method(p)
            dt = time.perf_counter() - t0
            return 1000 * dt / len(videos), f"{frames / dt:.0f} frames/s over {len(videos)} mp4s"

        _guard(rows, "decode", name, "ms/clip", measure)
    return rows


# --- models -----------------------------------------------------------------------------------

def model_rows(cfg: SpeedConfig) -> list[Row]:
    """Forward-pass latency per clip at batch 1 and batched, untrained weights (timing only)."""
    import torch

    from models.ctunet import build_model, count_parameters

    rows: list[Row] = []
    for arch in cfg.archs:
        def build(arch: str = arch) -> torch.nn.Module:
            return build_model(arch, {"num_classes": 3, "num_frames": cfg.num_frames,
                                      "image_size": cfg.image_size}).eval()

        def latency(batch: int, arch: str = arch) -> tuple[float, str]:
            model = build(arch)
            x = torch.randn(batch, cfg.num_frames, 1, cfg.image_size, cfg.image_size)
            with torch.inference_mode():
                dt = _median_time(lambda: model(x), cfg.repeats)
            return 1000 * dt / batch, f"{count_parameters(model):,} params"

        _guard(rows, "model", f"{arch} batch 1", "ms/clip", lambda arch=arch: latency(1, arch))
        _guard(rows, "model", f"{arch} batch {cfg.batch}", "ms/clip", lambda arch=arch: latency(cfg.batch, arch))
    return rows


def ensure_checkpoint(cfg: SpeedConfig, workdir: Path) -> tuple[Path, str]:
    """The checkpoint to time: the one given, the bundled one, or an untrained CTU-Net (timing only)."""
    from models.checkpoint import DEFAULT_CHECKPOINT, CheckpointMeta, save_checkpoint
    from models.ctunet import CTUNetConfig, build_model

    if cfg.checkpoint:
        return Path(cfg.checkpoint), "given checkpoint"
    if DEFAULT_CHECKPOINT.is_file():
        return DEFAULT_CHECKPOINT, "bundled checkpoint"
    config = CTUNetConfig(num_classes=len(LUNG3), num_frames=cfg.num_frames, image_size=cfg.image_size).to_dict()
    path = workdir / "untrained_ctunet.pt"
    spec = {"num_frames": cfg.num_frames, "image_size": cfg.image_size}
    save_checkpoint(path, build_model("ctunet", config),
                    CheckpointMeta(name="untrained", classes=list(LUNG3), input_spec=spec, config=config))
    return path, "untrained CTU-Net (no bundled checkpoint; timing only)"


def pipeline_rows(cfg: SpeedConfig, clip: Path | None, checkpoint: Path, ckpt_note: str, workdir: Path) -> list[Row]:
    """Warm in-process times of classify, key frames, guideline search, diagnose and batch throughput."""
    rows: list[Row] = []

    def classify() -> tuple[float, str]:
        from models.inference import get_classifier

        t0 = time.perf_counter()
        classifier = get_classifier(checkpoint)
        load = time.perf_counter() - t0
        dt = _median_time(lambda: classifier.predict(clip), cfg.repeats)
        return 1000 * dt, f"decode+preprocess+forward, {clip.name}; checkpoint load {1000 * load:.0f} ms; {ckpt_note}"

    def key_frames() -> tuple[float, str]:
        from tools.key_frames import RetrieveKeyFramesTool

        tool = RetrieveKeyFramesTool(checkpoint=checkpoint, out_dir=workdir / "key_frames")
        result = tool.invoke({"video_path": str(clip), "k": 4})
        if "error" in result:
            raise RuntimeError(result["error"])
        dt = _median_time(lambda: tool.invoke({"video_path": str(clip), "k": 4}), max(1, cfg.repeats // 2), 0)
        return 1000 * dt, "k=4: explain (Grad-CAM) + selection + PNGs and contact sheet"

    def guideline_query() -> tuple[float, str]:
        from tools.guidelines import search_guidelines

        t0 = time.perf_counter()
        first = search_guidelines(QUERIES[0], k=5)
        cold = time.perf_counter() - t0
        if "error" in first:
            raise RuntimeError(first["error"])
        times = []
        for q in QUERIES:
            t0 = time.perf_counter()
            search_guidelines(q, k=5)
            times.append(time.perf_counter() - t0)
        return 1000 * statistics.median(times), f"k=5, warm median of {len(QUERIES)}; first query {1000 * cold:.0f} ms"

    if clip is None:
        rows += [Row("pipeline", n, None, "ms", "n/a: no clip")
                 for n in ("classify one clip (warm)", "key frames tool (warm)")]
    else:
        _guard(rows, "pipeline", "classify one clip (warm)", "ms", classify)
        _guard(rows, "pipeline", "key frames tool (warm)", "ms", key_frames)
    _guard(rows, "pipeline", "guideline query (warm)", "ms", guideline_query)
    rows += diagnose_rows(cfg, checkpoint, workdir)
    return rows


def diagnose_rows(cfg: SpeedConfig, checkpoint: Path, workdir: Path) -> list[Row]:
    """In-process ``diagnose_case`` without an LLM: one warm case and cases per minute over all cases."""
    rows: list[Row] = []
    cases = [Path(c) for c in cfg.cases]
    if not cases:
        return [Row("pipeline", "diagnose one case, no LLM (warm)", None, "s", "n/a: no example cases"),
                Row("pipeline", "batch throughput, no LLM", None, "cases/min", "n/a: no example cases")]
    state: dict[str, Any] = {}

    def run_case(case: Path) -> None:
        from agent.graph import build_graph, diagnose_case
        from tools import get_tools

        if "graph" not in state:
            state["graph"] = build_graph(get_tools(checkpoint=checkpoint), backend="none")
        report = diagnose_case(case, workdir / "diagnose" / case.name, graph=state["graph"])
        state["errors"] = report.errors

    def one() -> tuple[float, str]:
        run_case(cases[0])  # warm-up: models, index, graph
        t0 = time.perf_counter()
        run_case(cases[0])
        errs = state.get("errors") or []
        note = f"{cases[0].name}; graph errors: {'; '.join(e.message for e in errs)}" if errs else cases[0].name
        return time.perf_counter() - t0, note

    def throughput() -> tuple[float, str]:
        t0 = time.perf_counter()
        for case in cases:
            run_case(case)
        dt = time.perf_counter() - t0
        return 60 * len(cases) / dt, f"{len(cases)} cases in {dt:.1f} s, warm, one process"

    _guard(rows, "pipeline", "diagnose one case, no LLM (warm)", "s", one)
    _guard(rows, "pipeline", "batch throughput, no LLM", "cases/min", throughput)
    return rows


# --- subprocesses: CLI start-up, whole commands, peak memory, profiles ------------------------

def _autous(*args: str) -> list[str]:
    return [sys.executable, "-m", "agent.cli", *args]


def _vm_hwm_mib(pid: int) -> float | None:
    """Peak resident memory of a running process from /proc (Linux), in MiB."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _maxrss_mib(ru_maxrss: int) -> float:
    """``ru_maxrss`` in MiB (bytes on macOS, KiB elsewhere)."""
    return ru_maxrss * (1 if sys.platform == "darwin" else 1024) / 2**20


def run_measured(argv: list[str], timeout: float = 600) -> tuple[float, float, int, str]:
    """Run a command: (wall s, peak RSS MiB of the child, exit status, last stderr line).

    The peak is the child's VmHWM polled from /proc while it runs (``ru_maxrss`` of a forked child
    would include the parent's memory); elsewhere ``ru_maxrss``.
    """
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    peak = 0.0
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=err)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            peak = max(peak, _vm_hwm_mib(proc.pid) or 0.0)
            if time.perf_counter() - t0 > timeout:
                proc.kill()
            time.sleep(0.02)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        lines = err.read().decode(errors="replace").strip().splitlines()
    if not peak:
        peak = _maxrss_mib(usage.ru_maxrss)
    return wall, peak, proc.returncode, (lines[-1] if lines else "")


def cli_rows(cfg: SpeedConfig, clip: Path | None, checkpoint: Path, workdir: Path) -> list[Row]:
    """Cold start of the CLI, whole ``classify``/``diagnose`` commands with their peak memory."""
    rows: list[Row] = []

    def cold(*args: str) -> tuple[float, str]:
        runs = [run_measured(_autous(*args)) for _ in range(3)]
        if runs[0][2] != 0:
            raise RuntimeError(f"exit {runs[0][2]}: {runs[0][3]}")
        return statistics.median(r[0] for r in runs), f"median of 3; peak RSS {runs[0][1]:.0f} MiB"

    def whole(args: list[str], what: str) -> list[Row]:
        wall, rss, code, last = run_measured(_autous(*args))
        if code != 0:
            note = f"n/a: exit {code}: {last}"
            return [Row("command", f"{what} (wall)", None, "s", note), Row("memory", f"{what} peak RSS", None, "MiB", note)]
        return [Row("command", f"{what} (wall)", wall, "s", "cold process"),
                Row("memory", f"{what} peak RSS", rss, "MiB", "VmHWM of the process")]

    _guard(rows, "start-up", "autous --help", "s", lambda: cold("--help"))
    _guard(rows, "start-up", "autous classify --help", "s", lambda: cold("classify", "--help"))
    if clip is not None:
        rows += whole(["classify", str(clip), "--checkpoint", str(checkpoint)], "autous classify one clip")
    if cfg.cases:
        rows += whole(["diagnose", cfg.cases[0], "--out", str(workdir / "cli_diagnose"), "--llm", "none",
                       "--checkpoint", str(checkpoint)], "autous diagnose, no LLM")
        _guard(rows, "command", "autous batch, no LLM", "cases/min", lambda: batch_command(cfg, checkpoint, workdir))
    return rows


def batch_command(cfg: SpeedConfig, checkpoint: Path, workdir: Path) -> tuple[float, str]:
    """``autous batch`` over a folder holding the example cases: cases per minute, start-up included."""
    cases_dir = workdir / "batch_cases"
    cases_dir.mkdir(exist_ok=True)
    for case in map(Path, cfg.cases):
        link = cases_dir / case.name
        if not link.exists():
            link.symlink_to(case.resolve(), target_is_directory=True)
    wall, rss, code, last = run_measured(_autous("batch", str(cases_dir), "--out", str(workdir / "batch_out"),
                                                 "--llm", "none", "--checkpoint", str(checkpoint)))
    if code != 0:
        raise RuntimeError(f"exit {code}: {last}")
    return 60 * len(cfg.cases) / wall, f"{len(cfg.cases)} cases in {wall:.1f} s, one worker, cold; peak RSS {rss:.0f} MiB"


def profile_command(args: list[str], workdir: Path, top: int = 15) -> dict[str, Any]:
    """cProfile of one whole ``autous`` command in a subprocess: total, import time, top functions."""
    out = workdir / f"profile_{args[0]}.pstats"
    argv = [sys.executable, "-m", "cProfile", "-o", str(out), "-m", "agent.cli", *args]
    wall, _, code, last = run_measured(argv)
    if code != 0 or not out.is_file():
        return {"command": _label(args), "error": f"n/a: exit {code}: {last}"}
    stats = pstats.Stats(str(out))
    ours, own = [], []
    imports = 0.0
    for (filename, line, func), (_cc, _nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if func == "_find_and_load":
            imports = max(imports, ct)
        name = f"{_short_path(filename)}:{line}({func})" if filename != "~" else func
        own.append({"function": name, "selftime_s": round(tt, 3), "cumtime_s": round(ct, 3)})
        path = _short_path(filename)
        if path.split("/")[0] in PROJECT_PACKAGES and func not in ("<module>", "main"):
            ours.append({"function": name, "cumtime_s": round(ct, 3), "selftime_s": round(tt, 3)})
    ours.sort(key=lambda e: -e["cumtime_s"])
    own.sort(key=lambda e: -e["selftime_s"])
    return {"command": _label(args), "wall_s": round(wall, 2),
            "import_s": round(imports, 2), "top": ours[:top], "own": own[:top]}


def _label(args: list[str] | tuple[str, ...]) -> str:
    """``autous <command> <first argument>``, the argument shown relative to the repository."""
    shown = list(args[:2])
    if len(shown) == 2 and not shown[1].startswith("-"):
        p = Path(shown[1]).resolve()
        shown[1] = str(p.relative_to(REPO)) if p.is_relative_to(REPO) else p.name
    return " ".join(["autous", *shown]) + (" …" if len(args) > 2 else "")


def _short_path(filename: str) -> str:
    parts = Path(filename).parts
    for anchor in ("site-packages", REPO.name):
        if anchor in parts:
            return "/".join(parts[len(parts) - parts[::-1].index(anchor):])
    return "/".join(parts[-2:])


def import_profile(args: tuple[str, ...] = ("classify", "--help"), top: int = 10) -> dict[str, Any]:
    """``python -X importtime`` of a CLI start-up: total import time and the costliest modules.

    Modules imported at the top level or one level down are ranked by cumulative time, so a
    package shows up together with the heavy dependency it pulls in.
    """
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "agent.cli", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    total, ranked = 0.0, []
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+\d+\s+\|\s+(\d+)\s+\|( +)(\S+)", line)
        if not m:
            continue
        depth, seconds = (len(m.group(2)) - 1) // 2, int(m.group(1)) / 1e6
        if depth == 0:
            total += seconds
        if depth <= 1:
            ranked.append({"module": m.group(3), "cumulative_s": round(seconds, 3)})
    ranked.sort(key=lambda e: -e["cumulative_s"])
    return {"command": _label(args), "total_s": round(total, 3), "top": ranked[:top]}


# --- the whole benchmark ----------------------------------------------------------------------

def find_mp4s(videos_dir: Path | None, limit: int) -> list[Path]:
    """Up to ``limit`` mp4 files of the videos folder, in name order."""
    if videos_dir is None or not videos_dir.is_dir():
        return []
    return sorted(p for p in videos_dir.iterdir() if p.suffix.lower() == ".mp4")[:limit]


def default_cases() -> tuple[str, ...]:
    """The example case folders shipped with the repository."""
    root = REPO / "examples" / "cases"
    return tuple(str(p) for p in sorted(root.iterdir()) if p.is_dir()) if root.is_dir() else ()


def run_speed(videos_dir: Path | None, cfg: SpeedConfig, workdir: Path | None = None) -> SpeedResult:
    """Measure everything of :class:`SpeedConfig`; parts that are missing give ``n/a`` rows."""
    import platform

    import torch

    torch.set_num_threads(cfg.threads)
    result = SpeedResult(environment={
        "python": platform.python_version(), "torch": torch.__version__, "torch_threads": cfg.threads,
        "cpu_count": os.cpu_count(), "machine": platform.machine(),
        "input_spec": {"num_frames": cfg.num_frames, "image_size": cfg.image_size},
    })
    videos = find_mp4s(videos_dir, cfg.decode_clips)
    clip = videos[0] if videos else None
    with tempfile.TemporaryDirectory(prefix="autous-speed-") as tmp:
        work = workdir or Path(tmp)
        checkpoint, ckpt_note = ensure_checkpoint(cfg, work)
        result.environment["checkpoint"] = ckpt_note
        if "decode" in cfg.parts:
            result.rows += decode_rows(videos, cfg.num_frames)
        if "model" in cfg.parts:
            result.rows += model_rows(cfg)
        if "pipeline" in cfg.parts:
            result.rows += pipeline_rows(cfg, clip, checkpoint, ckpt_note, work)
        if "cli" in cfg.parts:
            result.rows += cli_rows(cfg, clip, checkpoint, work)
        import resource

        result.rows.append(Row("memory", "benchmark process peak RSS",
                               _maxrss_mib(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss), "MiB",
                               "everything above in one process"))
        if "profile" in cfg.parts:
            if clip is not None:
                result.profile["classify"] = profile_command(
                    ["classify", str(clip), "--checkpoint", str(checkpoint)], work)
            if cfg.cases:
                result.profile["diagnose"] = profile_command(
                    ["diagnose", cfg.cases[0], "--out", str(work / "prof_diagnose"), "--llm", "none",
                     "--checkpoint", str(checkpoint)], work)
            result.profile["startup"] = import_profile()
            if cfg.cases:
                result.profile["diagnose_imports"] = import_profile(
                    ("diagnose", cfg.cases[0], "--out", str(work / "imp_diagnose"), "--llm", "none",
                     "--checkpoint", str(checkpoint)))
    return result


def _fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}" if abs(value) < 1 else f"{value:.1f}"


def to_markdown(result: dict[str, Any]) -> str:
    """The speed section of docs/benchmarks.md from :meth:`SpeedResult.to_dict`."""
    env = result.get("environment", {})
    lines = [
        "## Speed",
        "",
        f"CPU only: {env.get('cpu_count')} cores ({env.get('machine')}), torch {env.get('torch')} with "
        f"{env.get('torch_threads')} thread(s), Python {env.get('python')}; input "
        f"{env.get('input_spec', {}).get('num_frames')} frames × {env.get('input_spec', {}).get('image_size')} px; "
        f"classifier: {env.get('checkpoint')}. Times are medians of a few runs on a shared machine: "
        "read them as orders of magnitude.",
        "",
        "| group | measurement | value | unit | note |",
        "| --- | --- | ---: | --- | --- |",
    ]
    for r in result.get("rows", []):
        lines.append(f"| {r['group']} | {r['name']} | {_fmt(r['value'])} | {r['unit']} | {r['note']} |")
    prof = result.get("profile", {})
    if prof:
        lines += ["", "### Where the time goes", ""]
    for key in ("classify", "diagnose"):
        p = prof.get(key)
        if not p:
            continue
        if "error" in p:
            lines += [f"`{p['command']}`: {p['error']}", ""]
            continue
        lines += [f"`{p['command']}` (cProfile of the whole command): {p['wall_s']} s wall, of which "
                  f"{p['import_s']} s importing modules. Project functions by cumulative time:", "",
                  "| function | cumulative s | own s |", "| --- | ---: | ---: |"]
        lines += [f"| `{e['function']}` | {e['cumtime_s']} | {e['selftime_s']} |" for e in p["top"]]
        lines += ["", "All functions by own time:", "", "| function | own s | cumulative s |", "| --- | ---: | ---: |"]
        lines += [f"| `{e['function']}` | {e['selftime_s']} | {e['cumtime_s']} |" for e in p.get("own", [])]
        lines.append("")
    for key in ("startup", "diagnose_imports"):
        s = prof.get(key)
        if s:
            lines += [f"`{s['command']}` (`python -X importtime`): {s['total_s']} s of imports; costliest modules "
                      "(imported at the top level or one level down):", "", "| module | cumulative s |", "| --- | ---: |"]
            lines += [f"| `{e['module']}` | {e['cumulative_s']} |" for e in s["top"]]
            lines.append("")
    return "\n".join(lines)


def print_table(result: dict[str, Any]) -> None:
    """The speed rows as a rich table."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="Auto-US speed (CPU)")
    for col in ("group", "measurement", "value", "unit", "note"):
        table.add_column(col, justify="right" if col == "value" else "left")
    for r in result.get("rows", []):
        table.add_row(r["group"], escape(r["name"]), _fmt(r["value"]), r["unit"], escape(r["note"]))
    Console().print(table)
