"""``autous classify / evaluate / train / cv`` through the real CLI entry point, bad inputs included."""
from __future__ import annotations

import json

import pytest
from model_fixtures import make_tiny_checkpoint
from synthetic import synthetic_clip, write_video

from agent.cli import main

KINDS = ["a_lines", "b_lines"]


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    """Six generated mp4 clips (3 patients per class), a GIF, a corrupt clip and a manifest."""
    root = tmp_path_factory.mktemp("cli")
    rows = ["file,label,patient"]
    for i in range(3):
        for j, kind in enumerate(KINDS):
            name = f"{kind} ({i})+.mp4"
            write_video(root / name, synthetic_clip(kind, n_frames=12, size=64, seed=10 * i + j))
            rows.append(f'"{name}",{kind},{kind[0]}{i}')
    write_video(root / "noise.gif", synthetic_clip("noise", n_frames=6, size=48))
    (root / "fake.mp4").write_text("not a video")
    rows += ["noise.gif,noise,n0", "fake.mp4,a_lines,x9", "gone.mp4,b_lines,x8"]
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt", KINDS, abstain_threshold=0.9)


def test_classify_json_processes_every_input(clip_dir, ckpt, capsys):
    paths = [str(clip_dir / "a_lines (0)+.mp4"), str(clip_dir / "fake.mp4"), str(clip_dir / "noise.gif"),
             str(clip_dir / "missing.mp4")]
    status = main(["classify", *paths, "--json", "--checkpoint", str(ckpt)])
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert status == 1 and [x["path"] for x in lines] == paths
    good, fake, gif, missing = lines
    assert set(good) == {"path", "label", "confidence", "probabilities", "abstained"}
    assert good["label"] in KINDS and set(good["probabilities"]) == set(KINDS)
    assert good["abstained"] == (good["confidence"] < 0.9)
    assert gif["label"] in KINDS
    assert set(fake) == {"path", "error"} and fake["error"].startswith(str(clip_dir / "fake.mp4") + ": ")
    assert "no such file" in missing["error"]


def test_classify_table_and_success_status(clip_dir, ckpt, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")
    assert main(["classify", str(clip_dir / "b_lines (1)+.mp4"), "--checkpoint", str(ckpt)]) == 0
    out = capsys.readouterr().out
    assert "b_lines (1)+.mp4" in out and "not a diagnosis" in out


@pytest.mark.parametrize("content, problem", [(None, "checkpoint file does not exist"),
                                              (b"junk", "not a readable PyTorch checkpoint")])
def test_classify_bad_checkpoint_is_one_line(tmp_path, clip_dir, capsys, content, problem):
    bad = tmp_path / "bad.pt"
    if content is not None:
        bad.write_bytes(content)
    status = main(["classify", str(clip_dir / "noise.gif"), "--checkpoint", str(bad)])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"autous: error: {bad}: {problem}")


def test_evaluate_json_skips_and_reports(clip_dir, ckpt, tmp_path, capsys):
    png = tmp_path / "cm.png"
    status = main(["evaluate", "--manifest", str(clip_dir / "manifest.csv"), "--videos", str(clip_dir),
                   "--checkpoint", str(ckpt), "--json", "--confusion-png", str(png)])
    captured = capsys.readouterr()
    assert status == 0
    m = json.loads(captured.out)
    assert {"accuracy", "balanced_accuracy", "macro_f1", "per_class", "confusion", "n", "skipped"} <= set(m)
    assert m["n"] == 6 and sum(map(sum, m["confusion"])) == 6
    assert m["skipped"] == {"label_not_in_checkpoint": 1, "rows_unusable": 1, "unreadable": 1}
    assert "fake.mp4" in captured.err and "gone.mp4" in captured.err
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_evaluate_table(clip_dir, ckpt, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")
    assert main(["evaluate", "--manifest", str(clip_dir / "manifest.csv"), "--checkpoint", str(ckpt)]) == 0
    out = capsys.readouterr().out
    assert "balanced accuracy" in out and "confusion matrix" in out


@pytest.mark.parametrize("argv, problem", [
    (["evaluate", "--manifest", "{d}/nope.csv"], "nope.csv: no such manifest file"),
    (["train", "--manifest", "{d}/manifest.csv", "--out", "{d}/x.pt", "--classes", "a_lines"],
     "need clips of at least two classes"),
    (["train", "--manifest", "{d}/manifest.csv", "--out", "{d}/x.pt", "--epochs", "0"], "--epochs must be >= 1"),
    (["cv", "--manifest", "{d}/manifest.csv", "--data", "{d}"], "give either --manifest"),
    (["cv", "--manifest", "{d}/manifest.csv", "--classes", "a_lines,b_lines", "--folds", "9"],
     "cannot make 9 folds"),
])
def test_bad_invocations_are_one_line_errors(clip_dir, capsys, monkeypatch, tmp_path, argv, problem):
    monkeypatch.setenv("AUTOUS_CACHE_DIR", str(tmp_path))
    status = main([a.format(d=clip_dir) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and problem in err[-1] and err[-1].startswith("autous: error: ")
    assert not any("Traceback" in line for line in err)


def test_train_then_classify_and_cv(clip_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("AUTOUS_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "model.pt"
    common = ["--manifest", str(clip_dir / "manifest.csv"), "--classes", "a_lines,b_lines", "--epochs", "1"]
    assert main(["train", *common, "--out", str(out), "--seed", "1"]) == 0
    captured = capsys.readouterr()
    assert "fake.mp4" in captured.err and "gone.mp4" in captured.err  # reported, not fatal
    from models.checkpoint import read_meta

    meta = read_meta(out)
    assert meta.classes == KINDS and meta.data["clips"] == 6 and meta.recipe["seed"] == 1
    assert main(["classify", str(clip_dir / "a_lines (2)+.mp4"), "--json", "--checkpoint", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["label"] in KINDS
    assert main(["cv", *common, "--folds", "2", "--json"]) == 0
    cv = json.loads(capsys.readouterr().out)
    assert cv["n"] == 6 and len(cv["folds"]) == 2 and set(cv["summary"]["accuracy"]) == {"mean", "std"}
