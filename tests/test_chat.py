"""``autous chat`` driven by scripted input: slash commands, tool calls via the fake server, resume."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from agent_fixtures import index_dir, make_case, tiny_checkpoint
from fake_openai import FakeOpenAI, error, json_answer, text, tool_call
from rich.console import Console

from agent.chat import run_chat
from agent.llm import make_backend
from models.errors import UserError

DRAFT = {
    "preliminary_diagnosis": [{"diagnosis": "Viral pneumonia", "likelihood": "moderate",
                               "reasoning": "Confluent B-lines.", "citations": []}],
    "justification": "The classifier result and the B-line pattern agree.",
    "recommended_follow_up": [{"examination": "Viral PCR", "reason": "Confirms the agent.", "citations": []}],
    "citations": [],
}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A case folder (tiny clip + case.yaml), a tiny checkpoint and the shared guideline index folder."""
    case = make_case(tmp_path_factory.mktemp("chat") / "case_chat", id="chat-case")
    return {"case": case, "ckpt": tiny_checkpoint(), "index": index_dir()}


def lines(*items: str):
    """A ``read_line`` that returns the items, then raises EOFError like ``input()`` at end of stdin."""
    it: Iterator[str] = iter(items)

    def read(prompt: str = "") -> str:
        try:
            return next(it)
        except StopIteration:
            raise EOFError from None
    return read


def chat(env, tmp_path, *script: str, **kw) -> str:
    """Run the chat loop on the script; return everything it printed."""
    out = io.StringIO()
    kw.setdefault("db_path", tmp_path / "chat.sqlite")
    status = run_chat(lines(*script), Console(file=out, width=200, color_system=None), out_dir=tmp_path / "out",
                      checkpoint=env["ckpt"], index_dir=env["index"], **kw)
    assert status == 0
    return out.getvalue()


def test_chat_without_llm_answers_the_commands(env, tmp_path, monkeypatch):
    for name in ("AUTOUS_LLM", "AUTOUS_LLM_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    printed = chat(env, tmp_path, "/help", "/report", "why not bacterial pneumonia?", f"/load {env['case']}",
                   "/frames", "/load /nonexistent/case", "/bogus", "/quit", "never read", llm=None,
                   thread_id="no-llm")
    assert "thread no-llm (resume with --thread no-llm) · LLM: none" in printed
    assert "/frames     the key frames" in printed  # /help
    assert "No case loaded: /load DIR first." in printed  # /report before a case
    assert printed.count("Free-text questions need an LLM") == 2  # at start and for the question
    assert "Case chat-case" in printed and "classification: " in printed
    assert "written by: rules (LLM backend none" in printed
    report_json = tmp_path / "out" / "case_chat" / "report.json"
    assert f"files: {tmp_path / 'out' / 'case_chat' / 'report.md'}" in printed
    assert json.loads(report_json.read_text())["case_id"] == "chat-case"
    assert "#1 frame " in printed and "contact sheet: " in printed  # /frames
    sheet = printed.split("contact sheet: ")[1].split()[0]
    assert os.path.isfile(sheet)
    assert "cannot load the case: /nonexistent/case: not a case folder" in printed
    assert "unknown command /bogus; /help lists the commands" in printed
    assert "Bye. Resume with: autous chat --thread no-llm" in printed


def test_chat_uses_tools_and_resumes_the_thread(env, tmp_path):
    structured = lambda body: json_answer(DRAFT) if "response_format" in body else None  # noqa: E731
    with FakeOpenAI(responder=structured) as srv:
        srv.queue(tool_call("search_guidelines", query="B-lines in COVID-19 pneumonia", k=2),
                  text("Bacterial pneumonia usually shows a consolidation with air bronchograms; this clip "
                       "shows B-lines, so it is less likely."))
        llm = make_backend("openai:fake", base_url=srv.base_url, api_key="k", max_retries=0, timeout=30)
        printed = chat(env, tmp_path, "why not bacterial pneumonia?", "/quit", case_dir=env["case"],
                       llm=llm, thread_id="t1")
        diagnosis, first, second = srv.requests

        assert "response_format" in diagnosis  # /load ran the pipeline with this LLM
        assert "written by: llm (LLM backend openai, model fake)" in printed
        assert {t["function"]["name"] for t in first["tools"]} == {
            "classify_ultrasound_video", "retrieve_key_frames", "search_guidelines"}
        roles = [m["role"] for m in first["messages"]]
        assert roles == ["system", "user", "user"]
        assert "you assist; you do not diagnose" in first["messages"][0]["content"].lower()
        assert first["messages"][1]["content"].startswith("[case loaded] Case chat-case")
        # the tool really ran: its result (passages from the guideline index) went back to the model
        tool_msg = second["messages"][-1]
        assert tool_msg["role"] == "tool"
        result = json.loads(tool_msg["content"])
        assert result["query"] == "B-lines in COVID-19 pneumonia" and len(result["passages"]) == 2
        assert all(p["id"] and p["source"] for p in result["passages"])
        assert "→ search_guidelines(query='B-lines in COVID-19 pneumonia', k=2)" in printed
        assert "← search_guidelines: " in printed
        assert "so it is less likely" in printed

        # resume: the earlier messages and the case come back from SQLite; an LLM failure is one line
        srv.default = error(500)
        printed = chat(env, tmp_path, "/report", "and what about COVID-19?", "/frames", llm=llm, thread_id="t1")
    assert "Resumed thread t1: 5 earlier messages." in printed
    assert "[case] Case chat-case from" in printed
    assert "you: why not bacterial pneumonia?" in printed
    assert "assistant: Bacterial pneumonia usually shows a consolidation" in printed
    assert "Case chat-case" in printed and "Viral pneumonia [moderate]" in printed
    assert f"LLM error: LLM at {srv.base_url}: HTTP 500" in printed
    assert "contact sheet: " in printed  # the session went on after the error


def test_unusable_chat_database_is_a_user_error(env, tmp_path):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")
    with pytest.raises(UserError, match=r"chat.sqlite: cannot open the chat database"):
        chat(env, tmp_path, "/quit", llm=None, db_path=blocker / "chat.sqlite")


def test_cli_reads_scripted_stdin(env, tmp_path, repo_root):
    """The real command: ``autous chat CASE_DIR`` with piped input, no LLM."""
    cmd = [sys.executable, "-m", "agent", "chat", str(env["case"]), "--llm", "none", "--thread", "cli",
           "--db", str(tmp_path / "c.sqlite"), "--out", str(tmp_path / "out"), "--checkpoint", str(env["ckpt"])]
    run_env = {**os.environ, "AUTOUS_INDEX_DIR": str(env["index"]), "COLUMNS": "200"}
    proc = subprocess.run(cmd, input="/frames\nhello?\n", capture_output=True, text=True, cwd=repo_root,
                          env=run_env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "Case chat-case" in proc.stdout and "contact sheet: " in proc.stdout
    assert "Free-text questions need an LLM" in proc.stdout
    assert "Bye. Resume with: autous chat --thread cli" in proc.stdout


def test_thread_id_is_printed_literally(env, tmp_path, monkeypatch):
    monkeypatch.delenv("AUTOUS_LLM", raising=False)
    monkeypatch.delenv("AUTOUS_LLM_BASE_URL", raising=False)
    printed = chat(env, tmp_path, "/quit", llm="none", thread_id="[/b]t1")
    assert "--thread [/b]t1" in printed
