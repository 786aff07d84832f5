"""Case folders: validation of case.yaml, clip discovery and every bad-input message."""
from __future__ import annotations

from pathlib import Path

import pytest
from agent_fixtures import make_case

from agent.case import CaseError, load_case
from models.errors import UserError


def test_valid_case_finds_its_clip_and_defaults_id_to_folder(tmp_path: Path) -> None:
    loaded = load_case(make_case(tmp_path / "c1", age=61, sex="male"))
    assert loaded.id == "c1"
    assert loaded.video_path == tmp_path / "c1" / "clip.mp4"
    assert loaded.case.age == 61 and loaded.case.chief_complaint.startswith("Fever")
    assert loaded.notes == []


@pytest.mark.parametrize("clip, name", [("gif", "clip.gif"), ("png", "still.png"), ("frames", "frames")])
def test_every_input_form_is_a_clip(tmp_path: Path, clip: str, name: str) -> None:
    assert load_case(make_case(tmp_path / "c", clip=clip)).video_path.name == name


def test_id_and_video_keys(tmp_path: Path) -> None:
    folder = make_case(tmp_path / "c", id="patient-7", video="clip.mp4")
    make_case(folder, clip="gif", id="patient-7", video="clip.mp4")  # a second clip, disambiguated
    loaded = load_case(folder)
    assert loaded.id == "patient-7" and loaded.video_path.name == "clip.mp4"


def test_user_classification_needs_no_clip_and_is_resolved(tmp_path: Path) -> None:
    loaded = load_case(make_case(tmp_path / "c", clip=None, classification="Malignant breast lesion"))
    assert loaded.video_path is None
    assert loaded.case.classification == "breast_malignant"
    assert load_case(make_case(tmp_path / "d", clip=None, classification="gallbladder disease")).case.classification \
        == "gallbladder_disease"


def _error(folder: Path) -> str:
    with pytest.raises(CaseError) as info:
        load_case(folder)
    assert isinstance(info.value, UserError)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_unknown_key_names_file_and_key(tmp_path: Path) -> None:
    message = _error(make_case(tmp_path / "c", symptoms="cough"))
    assert "case.yaml" in message and "unknown key 'symptoms'" in message and "chief_complaint" in message


def test_wrong_type_names_the_field(tmp_path: Path) -> None:
    message = _error(make_case(tmp_path / "c", age="old"))
    assert "case.yaml" in message and "field 'age'" in message
    assert "field 'chief_complaint'" in _error(make_case(tmp_path / "d", chief_complaint=["a", "list"]))


def test_unknown_classification_lists_known_ids(tmp_path: Path) -> None:
    message = _error(make_case(tmp_path / "c", clip=None, classification="kidney stones"))
    assert "field 'classification'" in message and "covid19" in message


def test_malformed_yaml_gives_the_line(tmp_path: Path) -> None:
    folder = make_case(tmp_path / "c")
    (folder / "case.yaml").write_text("chief_complaint: cough\nphysical_exam: [unclosed\n", encoding="utf-8")
    message = _error(folder)
    assert message.startswith(str(folder / "case.yaml")) and "malformed YAML at line" in message


@pytest.mark.parametrize("text, problem", [("", "empty file"), ("- a\n- b\n", "expected a mapping")])
def test_empty_or_non_mapping_yaml(tmp_path: Path, text: str, problem: str) -> None:
    folder = make_case(tmp_path / "c")
    (folder / "case.yaml").write_text(text, encoding="utf-8")
    assert problem in _error(folder)


def test_missing_case_yaml_and_missing_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert "no case.yaml" in _error(tmp_path / "empty")
    assert "not a case folder" in _error(tmp_path / "nowhere")


def test_no_clip(tmp_path: Path) -> None:
    message = _error(make_case(tmp_path / "c", clip=None))
    assert "no clip found" in message and str(tmp_path / "c") in message


def test_two_clips_without_video_key(tmp_path: Path) -> None:
    folder = make_case(tmp_path / "c")
    make_case(folder, clip="gif")
    message = _error(folder)
    assert "several clips (clip.gif, clip.mp4)" in message and "video:" in message


def test_video_key_pointing_nowhere(tmp_path: Path) -> None:
    message = _error(make_case(tmp_path / "c", video="other.mp4"))
    assert "field 'video'" in message and "other.mp4 does not exist" in message


def test_all_clinical_fields_empty_is_an_error_some_empty_is_noted(tmp_path: Path) -> None:
    message = _error(make_case(tmp_path / "c", chief_complaint="", physical_exam=" ", additional_info=None))
    assert "all empty" in message
    loaded = load_case(make_case(tmp_path / "d", physical_exam="", additional_info=None))
    assert loaded.notes == ["case.yaml gives no physical exam.", "case.yaml gives no additional info."]
