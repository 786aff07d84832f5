"""The OpenAI-compatible backend against a real HTTP server on 127.0.0.1 (tests/fake_openai.py)."""
from __future__ import annotations

import json

import pytest
from fake_openai import FakeOpenAI, closed_port_url, error, json_answer, slow, text

from agent.llm import LLMError, NoBackend, OpenAIBackend, extract_json, make_backend
from agent.report import DiagnosisDraft
from models.errors import UserError

DRAFT = {
    "preliminary_diagnosis": [
        {"diagnosis": "Viral pneumonia", "likelihood": "moderate",
         "reasoning": "Confluent B-lines with a preserved pleural line.", "citations": ["P1"]}
    ],
    "justification": "The classifier and the B-line pattern agree [P1].",
    "recommended_follow_up": [{"examination": "Viral PCR", "reason": "Confirms the agent.", "citations": ["P1"]}],
    "citations": ["P1"],
}
MESSAGES = [("system", "You are a careful assistant."), ("human", "Write the diagnosis for the case.")]


@pytest.fixture
def server():
    with FakeOpenAI() as srv:
        yield srv


def backend(srv: FakeOpenAI, **kw) -> OpenAIBackend:
    kw.setdefault("max_retries", 0)
    kw.setdefault("timeout", 10)
    return make_backend("openai:fake-model", base_url=srv.base_url, api_key="k", **kw)


def test_plain_answer_reaches_the_server(server):
    server.queue(text("B-lines are vertical reverberation artefacts."))
    llm = backend(server)
    answer = llm.chat_model.invoke(MESSAGES)
    assert answer.text == "B-lines are vertical reverberation artefacts."
    (request,) = server.requests
    assert request["model"] == "fake-model"
    assert [m["role"] for m in request["messages"]] == ["system", "user"]
    assert llm.describe() == {"backend": "openai", "model": "fake-model"}


def test_structured_output_uses_json_schema(server):
    server.queue(json_answer(DRAFT))
    draft = backend(server).generate_structured(MESSAGES, DiagnosisDraft)
    assert draft == DiagnosisDraft.model_validate(DRAFT)
    (request,) = server.requests
    assert request["response_format"]["type"] == "json_schema"
    assert request["response_format"]["json_schema"]["name"] == "DiagnosisDraft"
    assert "preliminary_diagnosis" in request["response_format"]["json_schema"]["schema"]["properties"]


@pytest.mark.parametrize(
    "wrap",
    [
        "Here is the diagnosis:\n```json\n{}\n```\nI hope this helps.",
        "<think>The user wants JSON {\"not\": \"this\"}.</think>\n{}",
        "Sure! {} Let me know if you need more.",
    ],
    ids=["fenced", "think-tagged", "prose-wrapped"],
)
def test_parse_and_repair_reads_wrapped_json(server, wrap):
    server.queue(json_answer(DRAFT, wrap=wrap))
    draft = backend(server).generate_structured(MESSAGES, DiagnosisDraft)
    assert draft.preliminary_diagnosis[0].diagnosis == "Viral pneumonia"
    assert len(server.requests) == 1


def test_server_without_json_schema_gets_the_schema_in_the_prompt():
    with FakeOpenAI(json_answer(DRAFT, wrap="```json\n{}\n```"), reject_json_schema=True) as srv:
        draft = backend(srv).generate_structured(MESSAGES, DiagnosisDraft)
        assert draft.citations == ["P1"]
        rejected, plain = srv.requests
    assert rejected["response_format"]["type"] == "json_schema"
    assert "response_format" not in plain
    assert "JSON schema (DiagnosisDraft)" in plain["messages"][0]["content"]
    assert plain["messages"][0]["content"].startswith("You are a careful assistant.")


def test_wrong_shape_gets_one_repair_round_then_succeeds(server):
    server.queue(json_answer({"diagnosis": "pneumonia"}), json_answer(DRAFT))
    draft = backend(server).generate_structured(MESSAGES, DiagnosisDraft)
    assert draft.justification.startswith("The classifier")
    repair = server.requests[1]
    assert "response_format" not in repair
    assert repair["messages"][-2] == {"role": "assistant", "content": json.dumps({"diagnosis": "pneumonia"})}
    assert "preliminary_diagnosis: Field required" in repair["messages"][-1]["content"]


def test_wrong_shape_twice_is_a_clear_llm_error(server):
    server.queue(json_answer({"diagnosis": "pneumonia"}), text("I cannot answer in JSON, sorry."))
    with pytest.raises(LLMError) as info:
        backend(server).generate_structured(MESSAGES, DiagnosisDraft)
    message = str(info.value)
    assert message == (f"LLM at {server.base_url}: answer is not a valid DiagnosisDraft after 1 repair "
                       "round(s): the answer contains no JSON object")
    assert len(server.requests) == 2  # bounded: one answer, one repair


def test_invalid_field_values_are_named(server):
    bad = {**DRAFT, "preliminary_diagnosis": [{**DRAFT["preliminary_diagnosis"][0], "likelihood": "certain"}]}
    server.queue(json_answer(bad), json_answer(bad))
    with pytest.raises(LLMError, match=r"preliminary_diagnosis\.0\.likelihood: Input should be"):
        backend(server).generate_structured(MESSAGES, DiagnosisDraft)


def test_http_500_is_retried_a_bounded_number_of_times(server):
    server.default = error(500)
    with pytest.raises(LLMError, match=r"HTTP 500") as info:
        backend(server, max_retries=2).generate_structured(MESSAGES, DiagnosisDraft)
    assert "\n" not in str(info.value)
    assert len(server.requests) == 3  # the first try and two retries


def test_slow_answer_times_out(server):
    server.queue(slow(3.0, json.dumps(DRAFT)))
    with pytest.raises(LLMError, match=r"no answer within the 0.3 s timeout"):
        backend(server, timeout=0.3).generate_structured(MESSAGES, DiagnosisDraft)


def test_refused_connection_is_one_line():
    url = closed_port_url()
    llm = make_backend("openai:m", base_url=url, api_key="k", max_retries=0, timeout=5)
    with pytest.raises(LLMError) as info:
        llm.generate_structured(MESSAGES, DiagnosisDraft)
    assert str(info.value) == f"cannot reach LLM at {url}: connection refused"
    with pytest.raises(LLMError, match="connection refused"):
        llm.complete(MESSAGES)


def test_specs_and_environment(monkeypatch):
    for name in ("AUTOUS_LLM", "AUTOUS_LLM_BASE_URL", "AUTOUS_LLM_MODEL", "AUTOUS_LLM_API_KEY",
                 "OPENAI_BASE_URL", "OPENAI_API_KEY", "AUTOUS_LLM_TIMEOUT", "AUTOUS_LLM_MAX_RETRIES"):
        monkeypatch.delenv(name, raising=False)
    none = make_backend(None)
    assert isinstance(none, NoBackend) and none.chat_model is None
    assert none.describe() == {"backend": "none", "model": None}
    with pytest.raises(LLMError, match="no LLM configured"):
        none.generate_structured(MESSAGES, DiagnosisDraft)
    with pytest.raises(UserError, match="no API key"):
        make_backend("openai")
    with pytest.raises(UserError, match="unknown LLM backend"):
        make_backend("gpt4")

    monkeypatch.setenv("AUTOUS_LLM_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("AUTOUS_LLM_MODEL", "qwen2.5:7b")
    monkeypatch.setenv("AUTOUS_LLM_TIMEOUT", "7")
    llm = make_backend(None)
    assert llm.describe() == {"backend": "openai", "model": "qwen2.5:7b"}
    assert (llm.base_url, llm.timeout, llm.max_retries) == ("http://127.0.0.1:9/v1", 7.0, 2)
    assert make_backend("openai:deepseek-r1:14b").model == "deepseek-r1:14b"
    assert make_backend(llm) is llm
    monkeypatch.setenv("AUTOUS_LLM_MAX_RETRIES", "two")
    with pytest.raises(UserError, match="AUTOUS_LLM_MAX_RETRIES: expected a non-negative int, got 'two'"):
        make_backend("openai")


def test_extract_json_ignores_wrappers():
    assert extract_json('<think>maybe {"a": 1}</think>```json\n{"b": [1, 2]}\n```') == {"b": [1, 2]}
    assert extract_json('reasoning...</think>\nAnswer: {"c": "}"} trailing {') == {"c": "}"}
    assert extract_json("no json here") is None


# --- the whole diagnosis graph through a spec string (more cases in test_graph.py) ---------


def _diagnose(tmp_path, monkeypatch, base_url: str):
    from agent_fixtures import index_dir, make_case, tiny_checkpoint

    from agent.graph import diagnose_case

    monkeypatch.setenv("AUTOUS_LLM_BASE_URL", base_url)
    monkeypatch.setenv("AUTOUS_LLM_API_KEY", "k")
    monkeypatch.setenv("AUTOUS_LLM_MAX_RETRIES", "0")
    return diagnose_case(make_case(tmp_path / "case"), tmp_path / "out", llm="openai:fake-model",
                         checkpoint=tiny_checkpoint(), index_dir=index_dir())


def test_diagnose_case_with_a_fenced_valid_draft(server, tmp_path, monkeypatch):
    server.default = json_answer(DRAFT, wrap="Here you are:\n```json\n{}\n```")
    report = _diagnose(tmp_path, monkeypatch, server.base_url)
    assert report.backend == {"backend": "openai", "model": "fake-model", "written_by": "llm"}
    assert report.preliminary_diagnosis[0].diagnosis == "Viral pneumonia"
    assert json.loads((tmp_path / "out" / "report.json").read_text())["backend"]["written_by"] == "llm"
    assert len(server.requests) == 1


def test_diagnose_case_falls_back_when_the_llm_answers_the_wrong_shape(server, tmp_path, monkeypatch):
    server.default = json_answer({"diagnosis": "all clear"})
    report = _diagnose(tmp_path, monkeypatch, server.base_url)
    assert report.backend["written_by"] == "rules"
    assert report.preliminary_diagnosis and report.recommended_follow_up
    composes = [e.message for e in report.errors if e.node == "compose"]
    assert len(composes) == 2 and all("not a valid DiagnosisDraft" in m for m in composes)
    assert any("written by the no-LLM rules" in n for n in report.notes)
    assert len(server.requests) == 4  # two attempts, each one answer and one repair round: bounded


def test_diagnose_case_with_an_unreachable_llm(tmp_path, monkeypatch):
    url = closed_port_url()
    report = _diagnose(tmp_path, monkeypatch, url)
    assert report.backend["written_by"] == "rules"
    assert any(f"cannot reach LLM at {url}: connection refused" in e.message for e in report.errors)


def test_schema_is_not_repeated_when_the_prompt_already_gives_it():
    given = [("system", "Fill this schema: " + json.dumps(DiagnosisDraft.model_json_schema(), indent=1)),
             ("human", "The case.")]
    with FakeOpenAI(json_answer(DRAFT), reject_json_schema=True) as srv:
        assert backend(srv).generate_structured(given, DiagnosisDraft).citations == ["P1"]
        system = srv.requests[1]["messages"][0]["content"]
    assert system.endswith("validates against the DiagnosisDraft JSON schema given above.")
    assert system.count('"title": "DiagnosisDraft"') == 1
