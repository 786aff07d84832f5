"""A scriptable local server on 127.0.0.1 that speaks OpenAI chat-completions (``stream: false``).

Each test queues replies (``text``, ``json_answer``, ``tool_call``, ``error``, ``slow``) that the
server returns in order; ``default`` answers once the queue is empty. A ``responder(body)`` is
asked first and may answer a request itself (return a ``Reply``) or leave it to the queue (``None``). Every request body is kept
in ``requests``. ``reject_json_schema=True`` makes it answer 400 to ``response_format``
json_schema requests, like servers without structured output.
"""
from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable


@dataclass
class Reply:
    """One scripted answer: a message (text and/or tool calls), or an HTTP error, optionally late."""

    content: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    delay_s: float = 0.0


def text(content: str) -> Reply:
    return Reply(content=content)


def json_answer(obj: Any, wrap: str = "{}") -> Reply:
    """An answer whose text is ``wrap`` with ``{}`` replaced by the JSON of ``obj``."""
    return Reply(content=wrap.replace("{}", json.dumps(obj), 1))


def tool_call(name: str, **args: Any) -> Reply:
    return Reply(tool_calls=[{"name": name, "args": args}])


def error(status: int) -> Reply:
    return Reply(status=status)


def slow(delay_s: float, content: str = "late") -> Reply:
    return Reply(content=content, delay_s=delay_s)


def closed_port_url() -> str:
    """A base URL on 127.0.0.1 where nothing listens: connections are refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


class FakeOpenAI:
    """The server; use as a context manager or call ``close()``."""

    def __init__(self, *replies: Reply, default: Reply | None = None, reject_json_schema: bool = False,
                 responder: Callable[[dict[str, Any]], Reply | None] | None = None) -> None:
        self.replies: deque[Reply] = deque(replies)
        self.default = default
        self.responder = responder
        self.reject_json_schema = reject_json_schema
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def queue(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "FakeOpenAI":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _next(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            self.requests.append(body)
            if self.reject_json_schema and (body.get("response_format") or {}).get("type") == "json_schema":
                return Reply(status=400, content="response_format json_schema is not supported by this server")
            if body.get("stream"):
                return Reply(status=400, content="this fake server does not stream")
            if self.responder and (reply := self.responder(body)) is not None:
                return reply
            if self.replies:
                return self.replies.popleft()
            return self.default or Reply(status=500, content="fake server: no scripted reply left")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    return self._send(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
                reply = server._next(body)
                time.sleep(reply.delay_s)
                if reply.status != 200:
                    message = reply.content or f"fake server error {reply.status}"
                    return self._send(reply.status, {"error": {"message": message, "type": "server_error"}})
                self._send(200, completion(body.get("model", "fake"), reply))

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
                    pass

        return Handler


def completion(model: str, reply: Reply) -> dict[str, Any]:
    """A chat.completion object for one scripted reply."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
    if reply.tool_calls:
        message["tool_calls"] = [
            {"id": f"call_{i}", "type": "function",
             "function": {"name": c["name"], "arguments": json.dumps(c["args"])}}
            for i, c in enumerate(reply.tool_calls)
        ]
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": "tool_calls" if reply.tool_calls else "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
