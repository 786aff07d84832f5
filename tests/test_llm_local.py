"""The local transformers backend: spec resolution, and the real SmolLM2-135M (``slow``)."""
from __future__ import annotations

import io

import pytest
import yaml
from model_fixtures import make_tiny_checkpoint
from rich.console import Console
from synthetic import synthetic_clip, write_video

from agent.llm import LLMError, LocalBackend, make_backend, resolve_local
from agent.report import DiagnosisDraft
from models.errors import UserError

MESSAGES = [{"role": "system", "content": "You are a concise assistant."},
            {"role": "user", "content": "In one sentence: what is a B-line in lung ultrasound?"}]


def test_specs_resolve_to_a_model(tmp_path):
    model_dir, gguf = resolve_local("smollm2")
    assert (model_dir / gguf).is_file() and gguf.endswith(".gguf")
    llm = make_backend("local:smollm2", max_new_tokens=8)
    assert isinstance(llm, LocalBackend) and llm.max_new_tokens == 8
    assert llm.describe() == {"backend": "local", "model": "SmolLM2-135M-Instruct.Q4_1.gguf"}
    (tmp_path / "weights.gguf").write_bytes(b"")
    assert resolve_local(str(tmp_path / "weights.gguf")) == (tmp_path, "weights.gguf")
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text("{}")
    assert resolve_local(str(tmp_path / "hf")) == (tmp_path / "hf", None)
    with pytest.raises(UserError, match=r"nowhere: not a transformers model folder"):
        make_backend(f"local:{tmp_path / 'nowhere'}")
    with pytest.raises(UserError, match="unknown LLM backend"):
        make_backend("local:")


def test_a_broken_model_file_is_a_clear_error(tmp_path):
    (tmp_path / "broken.gguf").write_bytes(b"not a gguf file")
    llm = make_backend(f"local:{tmp_path / 'broken.gguf'}")
    with pytest.raises(UserError, match=r"broken.gguf: cannot load the model"):
        llm.generate_structured(MESSAGES, DiagnosisDraft)


def test_chat_says_the_local_model_cannot_use_tools(tmp_path):
    from agent.chat import run_chat

    out = io.StringIO()
    llm = make_backend("local:smollm2")
    run_chat(lambda prompt: "/quit", Console(file=out, width=200), llm=llm, db_path=tmp_path / "c.sqlite",
             out_dir=tmp_path / "out")
    assert "LLM: local (SmolLM2-135M-Instruct.Q4_1.gguf)" in out.getvalue()
    assert "This model cannot call tools: it answers from the loaded report only." in out.getvalue()


@pytest.fixture(scope="module")
def smollm2():
    return make_backend("local:smollm2", max_new_tokens=12)


@pytest.mark.slow
def test_smollm2_generates_text(smollm2):
    answer = smollm2.chat_model.invoke(MESSAGES)
    assert isinstance(answer.text, str) and answer.text.strip()
    assert smollm2.load() is smollm2.load()  # loaded once per process


@pytest.mark.slow
def test_smollm2_structured_output_validates_or_fails_clearly(smollm2):
    try:
        draft = smollm2.generate_structured(MESSAGES, DiagnosisDraft)
    except LLMError as exc:
        assert str(exc).startswith("local model SmolLM2-135M-Instruct.Q4_1.gguf: answer is not a valid DiagnosisDraft")
        assert "\n" not in str(exc)
    else:
        assert isinstance(draft, DiagnosisDraft)


@pytest.mark.slow
def test_diagnose_case_with_smollm2_ends_in_a_report(tmp_path, monkeypatch):
    from agent.graph import diagnose_case

    case = tmp_path / "case"
    case.mkdir()
    write_video(case / "clip.mp4", synthetic_clip("b_lines", n_frames=12, size=64, seed=4))
    (case / "case.yaml").write_text(yaml.safe_dump({"chief_complaint": "Cough.", "physical_exam": "Crackles."}))
    ckpt = make_tiny_checkpoint(tmp_path / "tiny.pt", ("covid19", "normal"))
    monkeypatch.setenv("AUTOUS_LLM_MAX_NEW_TOKENS", "16")
    monkeypatch.setattr("agent.nodes.MAX_LLM_ATTEMPTS", 1)  # one answer + one repair: two generations on CPU
    report = diagnose_case(case, tmp_path / "out", llm="local:smollm2", checkpoint=ckpt, index_dir=tmp_path / "index")
    assert (tmp_path / "out" / "report.json").is_file()
    assert report.backend["backend"] == "local" and report.backend["model"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
    if report.backend["written_by"] == "rules":  # SmolLM2 rarely writes a valid draft: the fallback is noted
        assert any("written by the no-LLM rules" in n for n in report.notes)
        assert any(e.node == "compose" for e in report.errors)
    assert report.preliminary_diagnosis and report.recommended_follow_up
