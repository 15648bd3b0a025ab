"""A local OpenAI-compatible HTTP server that serves *scripted* replies.

Tests (and offline demos) point the real ``openai`` client at it.  It proves plumbing:
requests, retries, timeouts, usage accounting, logprobs.  It never measures LLM quality.

    with ScriptedLLMServer(["SELECT 1"]) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="test")

A reply is a string (the assistant content) or a :class:`Reply` (status code, delay,
logprobs on/off, explicit usage).  ``responder`` may instead pick a reply per request.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_TOKEN = re.compile(r"\w+|[^\w\s]")


def count_tokens(text: str) -> int:
    """A deterministic stand-in tokenizer (words and punctuation)."""
    return len(_TOKEN.findall(text))


@dataclass
class Reply:
    content: str = ""
    status: int = 200
    delay: float = 0.0
    logprobs: bool = True
    n: int | None = None  # None: as many choices as requested, all the same content
    contents: list[str] | None = None  # distinct contents for n > 1
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    error_message: str = "scripted error"


@dataclass
class ScriptedLLMServer:
    replies: Iterable[str | Reply] = ()
    responder: Callable[[dict[str, Any]], str | Reply] | None = None
    model: str = "scripted-model"
    requests: list[dict[str, Any]] = field(default_factory=list)
    usage_log: list[dict[str, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._queue: deque[str | Reply] = deque(self.replies)
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- scripting -------------------------------------------------------------------
    def enqueue(self, *replies: str | Reply) -> None:
        with self._lock:
            self._queue.extend(replies)

    def _next(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            self.requests.append(body)
            if self._queue:
                r = self._queue.popleft()
            elif self.responder is not None:
                r = self.responder(body)
            else:
                r = Reply(status=500, error_message="no scripted reply left")
        return Reply(content=r) if isinstance(r, str) else r

    @property
    def reported_usage(self) -> tuple[int, int]:
        """Sum of (prompt, completion) tokens the server reported in successful replies."""
        return (sum(u["prompt_tokens"] for u in self.usage_log),
                sum(u["completion_tokens"] for u in self.usage_log))

    # -- serving ---------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        assert self._server is not None, "server not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def start(self) -> ScriptedLLMServer:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, {"object": "list", "data": [{"id": outer.model, "object": "model"}]})
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except json.JSONDecodeError:
                    self._send(400, {"error": {"message": "bad json"}})
                    return
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, {"error": {"message": f"unknown path {self.path}"}})
                    return
                reply = outer._next(body)
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.status != 200:
                    self._send(reply.status, {"error": {"message": reply.error_message,
                                                        "type": "scripted", "code": reply.status}})
                    return
                self._send(200, outer._completion(body, reply))

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # stop() waits for serve_forever to notice: poll every 50 ms, not the default 0.5 s
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def _completion(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        n = int(body.get("n") or 1) if reply.n is None else reply.n
        contents = reply.contents or [reply.content] * n
        prompt = "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
        pt = reply.prompt_tokens if reply.prompt_tokens is not None else count_tokens(prompt)
        ct = reply.completion_tokens if reply.completion_tokens is not None else \
            sum(count_tokens(c) for c in contents)
        choices = []
        for i, c in enumerate(contents):
            ch: dict[str, Any] = {"index": i, "finish_reason": "stop",
                                  "message": {"role": "assistant", "content": c}}
            if body.get("logprobs") and reply.logprobs:
                toks = _TOKEN.findall(c) or [c]
                k = int(body.get("top_logprobs") or 0)
                ch["logprobs"] = {"content": [
                    {"token": t, "logprob": -0.05 * (j % 5), "bytes": list(t.encode()),
                     "top_logprobs": [{"token": t, "logprob": -0.05 * (j % 5), "bytes": list(t.encode())}]
                     + [{"token": f"<alt{a}>", "logprob": math.log(0.01), "bytes": None} for a in range(max(k - 1, 0))]}
                    for j, t in enumerate(toks)]}
            else:
                ch["logprobs"] = None
            choices.append(ch)
        usage = {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct}
        with self._lock:
            self.usage_log.append({"prompt_tokens": pt, "completion_tokens": ct})
        return {"id": f"chatcmpl-scripted-{len(self.requests)}", "object": "chat.completion",
                "created": int(time.time()), "model": body.get("model") or self.model,
                "choices": choices, "usage": usage}

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> ScriptedLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
