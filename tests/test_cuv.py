"""CUV builder: small fixture trees in each source's published layout -> manifest, classes, counts."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from synthetic import synthetic_clip, write_frame_folder, write_image, write_video

from agent.cli import main
from models.cuv import build_cuv, scan_buv, scan_butterfly, scan_pocus, scan_uidatagb
from models.data import read_manifest
from models.errors import ManifestError
from models.video import read_clip

UIDATAGB_FOLDERS = ["1Gallstones", "2Abdomen and retroperitoneum", "3cholecystitis",
                    "4Membranous and gangrenous cholecystitis", "5Perforation", "6Polyps and cholesterol crystals",
                    "7Adenomyomatosis", "8Carcinoma", "9Various causes of gallbladder wall thickening"]


def clip(kind: str = "b_lines", seed: int = 0):
    return synthetic_clip(kind, n_frames=4, size=32, seed=seed)


def make_buv(root: Path) -> Path:
    """'Miccai 2022 BUV Dataset': rawframes/<class>/<video>/NNNNNN.png and the COCO-VID split files."""
    buv = root / "Miccai 2022 BUV Dataset"
    videos = {"benign": ["x1a2b3c", "x4d5e6f"], "malignant": ["x7a8b9c"]}
    for cls, names in videos.items():
        for i, name in enumerate(names):
            write_frame_folder(buv / "rawframes" / cls / name, clip("a_lines", i), ".png", "{:06d}", start=0)
    (buv / "rawframes" / "malignant" / "xempty").mkdir()

    def coco(files: list[str]) -> str:
        return json.dumps({"images": [{"id": i, "file_name": f"{f}/000000.png"} for i, f in enumerate(files)],
                           "annotations": [], "categories": [{"id": 0, "name": "benign"}]})

    (buv / "imagenet_vid_train_15frames.json").write_text(coco(["benign/x1a2b3c", "malignant/x7a8b9c"]))
    (buv / "imagenet_vid_val.json").write_text(coco(["benign/x4d5e6f"]))
    return buv


def make_uidatagb(root: Path) -> Path:
    """'Gallblader Diseases Dataset' (sic): nine numbered disease folders of JPEGs (+ a normal folder)."""
    gb = root / "UIdataGB" / "Gallblader Diseases Dataset"
    for i, folder in enumerate(UIDATAGB_FOLDERS):
        write_image(gb / folder / f"im{i}.jpg", clip("noise", i)[0])
    write_image(gb / "1Gallstones" / "im99.jpg", clip("noise", 99)[0])
    (gb / "1Gallstones" / "Thumbs.db").write_bytes(b"\0")
    write_image(gb / "Normal" / "n1.jpg", clip("a_lines")[0])
    return root / "UIdataGB"


def make_pocus(root: Path) -> Path:
    """covid19_ultrasound repository: data/pocus_videos/{convex,linear} and data/dataset_metadata.csv."""
    repo = root / "covid19_ultrasound"
    convex, linear = repo / "data" / "pocus_videos" / "convex", repo / "data" / "pocus_videos" / "linear"
    write_video(convex / "Cov-Atlas+(44).gif", clip("b_lines", 1))
    write_video(convex / "Cov_combatting_Image1.mp4", clip("b_lines", 2))
    write_video(convex / "Pneu_liftl_pneu_case3_clip3.mp4", clip("a_lines", 3))
    write_video(convex / "Reg_Avi_Video_001.mp4", clip("a_lines", 4))
    write_video(convex / "Vir_tsung_vid1.avi", clip("b_lines", 5))
    write_video(convex / "Cov_Butterfly_Confluent B lines.avi", clip("b_lines", 6))
    write_video(linear / "Cov-Atlas-pleural2.mp4", clip("b_lines", 7))
    (convex / "README.md").write_text("notes")
    (repo / "data" / "dataset_metadata.csv").write_text(
        "Date added,Current location,Filename,Label,Patient ID / Name\n"
        "20.04.20,data/pocus_videos/Convex,Cov-Atlas+(44),COVID-19,36\n"
        "20.04.20,data/pocus_videos/Linear,Cov-Atlas-pleural2,COVID-19,43\n"
        "20.04.20,data/pocus_videos/Convex,Pneu_liftl_pneu_case3_clip3,Bacterial pneumonia,\n")
    return repo


def make_butterfly(root: Path) -> Path:
    """The unzipped Butterfly gallery: <category>/<video>.mp4."""
    bf = root / "butterfly"
    write_video(bf / "B-lines" / "Confluent B lines.mp4", clip("b_lines", 8))
    write_video(bf / "Consolidation" / "Consolidation_Example 2.mp4", clip("b_lines", 9))
    write_video(bf / "Normal" / "Normal Lung A lines.mp4", clip("a_lines", 10))
    return bf


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sources")
    return {"buv": make_buv(root), "uidatagb": make_uidatagb(root), "pocus": make_pocus(root),
            "butterfly": make_butterfly(root)}


def rows_of(manifest: Path) -> list[dict[str, str]]:
    with open(manifest, newline="") as fh:
        return list(csv.DictReader(fh))


def test_build_all_four_sources(tmp_path, sources):
    out = tmp_path / "cuv"
    result = build_cuv(out, **sources)
    assert result.counts == {"breast_benign": {"buv": 2}, "breast_malignant": {"buv": 1},
                             "gallbladder_disease": {"uidatagb": 10},
                             "covid19": {"pocus": 3, "butterfly": 2}, "bacterial_pneumonia": {"pocus": 1}}
    rows = rows_of(out / "manifest.csv")
    assert list(rows[0]) == ["file", "label", "patient", "source", "original", "split"]
    by_original = {r["original"]: r for r in rows}
    benign = by_original["rawframes/benign/x1a2b3c"]
    assert benign["label"] == "breast_benign" and benign["split"] == "train" and benign["patient"] == "buv:x1a2b3c"
    assert by_original["rawframes/benign/x4d5e6f"]["split"] == "val"
    assert by_original["data/pocus_videos/convex/Cov-Atlas+(44).gif"]["patient"] == "pocus:36"
    assert by_original["data/pocus_videos/linear/Cov-Atlas-pleural2.mp4"]["patient"] == "pocus:43"
    pneu = by_original["data/pocus_videos/convex/Pneu_liftl_pneu_case3_clip3.mp4"]
    assert pneu["label"] == "bacterial_pneumonia" and pneu["patient"] == "pocus:Pneu_liftl_pneu_case3_clip3"
    assert by_original["B-lines/Confluent B lines.mp4"]["file"] == "covid19/butterfly_Confluent B lines.mp4"
    gb = [r for r in rows if r["source"] == "uidatagb"]
    assert {r["original"].split("/")[1] for r in gb} == set(UIDATAGB_FOLDERS)
    reasons = {orig: reason for orig, _, reason in result.skipped}
    assert "not a CUV class" in reasons["data/pocus_videos/convex/Reg_Avi_Video_001.mp4"]
    assert "not a CUV class" in reasons["data/pocus_videos/convex/Vir_tsung_vid1.avi"]
    assert "--butterfly" in reasons["data/pocus_videos/convex/Cov_Butterfly_Confluent B lines.avi"]
    assert "normal" in reasons["Normal/Normal Lung A lines.mp4"]
    assert "normal" in reasons["Gallblader Diseases Dataset/Normal"]
    assert "no frame images" in reasons["rawframes/malignant/xempty"]
    assert "not an image" in reasons["Gallblader Diseases Dataset/1Gallstones/Thumbs.db"]
    assert len(rows_of(out / "skipped.csv")) == len(result.skipped)
    # the links resolve and every clip reads through the ordinary loader
    assert all((out / r["file"]).is_symlink() for r in rows)
    data = read_manifest(out / "manifest.csv")
    assert len(data.records) == len(rows) == 19 and not data.skipped
    for record in data.records:
        assert read_clip(record.path, 4).frames.shape[0] == 4


def test_copy_mode_and_a_single_source(tmp_path, sources):
    out = tmp_path / "copy"
    result = build_cuv(out, pocus=sources["pocus"], copy=True)
    rows = rows_of(out / "manifest.csv")
    assert result.counts["covid19"] == {"pocus": 4}  # the Butterfly clip counts as POCUS without --butterfly
    assert result.counts["breast_benign"] == {}
    assert all((out / r["file"]).is_file() and not (out / r["file"]).is_symlink() for r in rows)
    buv = build_cuv(tmp_path / "buv", buv=sources["buv"], copy=True)
    assert (tmp_path / "buv" / "breast_benign" / "buv_x1a2b3c" / "000000.png").is_file()
    assert sum(sum(c.values()) for c in buv.counts.values()) == 3


def test_leftover_from_an_interrupted_build_is_one_clear_error(tmp_path, sources):
    out = tmp_path / "half"
    build_cuv(out, pocus=sources["pocus"])
    (out / "manifest.csv").unlink()  # as if the first build stopped before writing it
    with pytest.raises(ManifestError, match="cannot link .*File exists") as info:
        build_cuv(out, pocus=sources["pocus"])
    assert str(info.value).startswith(f"{out}/") and "\n" not in str(info.value)


def test_scans_accept_the_inner_folders(sources):
    assert len(scan_buv(sources["buv"] / "rawframes").items) == 3
    assert len(scan_uidatagb(sources["uidatagb"] / "Gallblader Diseases Dataset").items) == 10
    assert len(scan_pocus(sources["pocus"] / "data" / "pocus_videos").items) == 5
    assert len(scan_butterfly(sources["butterfly"] / "B-lines").items) == 1


@pytest.mark.parametrize("scan, option", [(scan_buv, "--buv"), (scan_uidatagb, "--uidatagb"),
                                          (scan_pocus, "--pocus"), (scan_butterfly, "--butterfly")])
def test_missing_or_empty_source_is_one_clear_error(tmp_path, scan, option):
    with pytest.raises(ManifestError, match=f"no such folder \\({option}\\)") as info:
        scan(tmp_path / "absent")
    assert str(info.value).startswith(f"{tmp_path / 'absent'}: ")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ManifestError, match="no .* found") as info:
        scan(tmp_path / "empty")
    assert str(info.value).startswith(f"{tmp_path / 'empty'}: ") and "\n" not in str(info.value)


def test_cli(tmp_path, sources, capsys):
    out = tmp_path / "cli"
    assert main(["data", "build-cuv", "--buv", str(sources["buv"]), "--butterfly", str(sources["butterfly"]),
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "breast_benign" in printed and "5 clips" in printed
    assert main(["data", "build-cuv", "--buv", str(sources["buv"]), "--out", str(out)]) == 2
    assert "already holds a data set" in capsys.readouterr().err
    assert main(["data", "build-cuv", "--pocus", str(tmp_path / "nope"), "--out", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"autous: error: {tmp_path / 'nope'}: no such folder") and "Traceback" not in err
    assert main(["data", "build-cuv", "--out", str(tmp_path / "o3")]) == 2
    assert "no source given" in capsys.readouterr().err
