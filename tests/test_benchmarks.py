"""Benchmark code on a tiny generated data set: 2 folds, 1 epoch, tiny models (no timing asserts)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from synthetic import KINDS, synthetic_clip, write_video, write_zero_frame_video

from benchmarks import run, speed
from benchmarks.classification import MODELS

LABELS = ("covid19", "bacterial_pneumonia", "normal")
TINY = ["--folds", "2", "--epochs", "1", "--train-frames", "4", "--train-size", "32", "--width", "4", "--jobs", "1"]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    """12 clips (mp4 and GIF, names with spaces) of 6 patients, a missing file and an unreadable clip."""
    root = tmp_path_factory.mktemp("bench")
    videos = root / "videos"
    videos.mkdir()
    rows = ["file,label,patient"]
    for c, (kind, label) in enumerate(zip(KINDS, LABELS)):
        for j in range(4):
            name = f"{label}_{j}.mp4" if j % 2 == 0 else f"{label} ({j}).gif"
            write_video(videos / name, synthetic_clip(kind, 8, 64, seed=10 * c + j))
            rows.append(f'"{name}",{label},p{c}{j // 2}')
    write_zero_frame_video(videos / "empty.mp4")
    rows += ["empty.mp4,normal,p99", "missing.mp4,normal,p98"]
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root


def _args(data: Path, out: Path) -> list[str]:
    return ["--manifest", str(data / "manifest.csv"), "--videos", str(data / "videos"), "--out", str(out / "b.md"),
            "--cache-dir", str(out / "cache"), "--progress-dir", str(out / "progress")]


def test_classification_benchmark_end_to_end(tiny_data: Path, tmp_path: Path, capsys):
    models = ["ctunet", "frame_cnn", "cnn3d", "ctunet_no_frequency"]
    argv = [*_args(tiny_data, tmp_path), "--only", "classification", "--models", ",".join(models), *TINY]
    assert run.main(argv) == 0
    log = capsys.readouterr().out
    assert "skipped:" in log and "empty.mp4" in log  # the unreadable clip is reported, not fatal
    result = json.loads((tmp_path / "b.json").read_text())["classification"]
    assert result["data"]["clips"] == 12 and result["data"]["skipped"] == 2
    assert sum(result["data"]["fold_sizes"]) == 12  # every clip is held out exactly once
    assert list(result["models"]) == models
    for key, m in result["models"].items():
        assert m["folds_done"] == 2 and m["params"] > 0
        assert sum(map(sum, m["confusion"])) == 12
        for metric in ("accuracy", "balanced_accuracy", "macro_f1"):
            assert 0.0 <= m["summary"][metric]["mean"] <= 1.0
        assert m["forward_ms"] > 0 and m["with_decode_ms"] > 0
        assert (tmp_path / "b" / f"confusion_{key}.png").stat().st_size > 1000
    md = (tmp_path / "b.md").read_text()
    assert "## Classification" in md and "| CTU-Net |" in md and "| Frame CNN |" in md
    assert "86.73%" in md and "Born et al. 2021" in md  # published figures, marked as not measured here
    assert "CTU-Net vs 3-D CNN" in md
    # the same folds are reused on a second run: nothing is trained again
    assert run.main(argv) == 0
    assert "8 fold results reused" in capsys.readouterr().out


def test_speed_part_and_render(tiny_data: Path, tmp_path: Path):
    cfg = speed.SpeedConfig(num_frames=4, image_size=32, batch=2, repeats=1, decode_clips=2,
                            archs=("frame_cnn", "cnn3d"), parts=("decode", "model"))
    result = speed.run_speed(tiny_data / "videos", cfg, workdir=tmp_path).to_dict()
    rows = {r["name"]: r for r in result["rows"]}
    assert rows["decord full"]["value"] > 0 and "frames/s over 2 mp4s" in rows["decord full"]["note"]
    assert rows["read_clip (project path), T=4"]["value"] > 0
    assert rows["cnn3d batch 2"]["value"] > 0 and "params" in rows["cnn3d batch 2"]["note"]
    assert rows["benchmark process peak RSS"]["value"] > 0
    md = speed.to_markdown(result)
    assert "## Speed" in md and "| decode | decord full |" in md
    # the Markdown is regenerated from the JSON alone
    out = tmp_path / "docs" / "b.md"
    out.parent.mkdir()
    out.with_suffix(".json").write_text(json.dumps({"speed": result}))
    assert run.main(["--render-only", "--out", str(out)]) == 0
    assert "| model | cnn3d batch 1 |" in out.read_text()


def test_missing_parts_give_na_rows_not_failures(tmp_path: Path):
    cfg = speed.SpeedConfig(num_frames=4, image_size=32, repeats=1, cases=(), parts=("decode",))
    result = speed.run_speed(tmp_path / "no-videos", cfg, workdir=tmp_path)
    assert all(r.value is None and r.note.startswith("n/a") for r in result.rows if r.group == "decode")
    rows = speed.diagnose_rows(cfg, tmp_path / "x.pt", tmp_path)
    assert [r.note for r in rows] == ["n/a: no example cases"] * 2


def test_subprocess_measurements(tmp_path: Path):
    wall, rss, code, last = speed.run_measured(["python3", "-c", "import sys; print('x', file=sys.stderr); sys.exit(3)"])
    assert code == 3 and last == "x" and wall > 0 and rss > 0
    prof = speed.import_profile(("--help",))
    assert prof["total_s"] > 0 and prof["top"] and all(e["cumulative_s"] >= 0 for e in prof["top"])
    prof = speed.profile_command(["--help"], tmp_path)
    assert prof["command"] == "autous --help" and prof["wall_s"] > 0
    assert any(e["function"].startswith("agent/cli.py") for e in prof["top"]) and prof["own"]


def test_run_reports_user_errors(tmp_path: Path, capsys):
    assert run.main(["--only", "classification", "--out", str(tmp_path / "b.md")]) == 2
    assert "needs --manifest" in capsys.readouterr().err
    assert run.main(["--render-only", "--out", str(tmp_path / "b.md")]) == 2
    assert "no results to render" in capsys.readouterr().err
    assert set(MODELS) >= {"ctunet", "frame_cnn", "cnn3d", "ctunet_no_spatial", "ctunet_no_temporal"}
