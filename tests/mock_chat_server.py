"""A local OpenAI-compatible chat-completions server that judges TL;DR summaries and can fail.

`MockChatServer` listens on 127.0.0.1 (a free port) and answers `POST /v1/chat/completions` as
OpenAI's API and `vllm serve` do: a JSON request `{"model", "messages": [{"role", "content"}],
...}` gets `{"id", "object": "chat.completion", "model", "choices": [{"index", "message":
{"role": "assistant", "content"}, "finish_reason"}], "usage": {"prompt_tokens",
"completion_tokens", "total_tokens"}}`. Token counts are whitespace-separated words of the
prompt and of the answer, so a test can compute the exact cost.

The answer is a judgment in the format of the DPO paper's TL;DR prompt ("Comparison: ...\\n
Preferred: A"): the server reads summary A and summary B out of the prompt and asks `rule`:

- `"longer"`: prefers the longer summary (A on equal length): a length-biased judge that is
  consistent under the position swap;
- `"always_a"`: prefers position A whatever it holds (a pure position bias);
- `"malformed"`: a comparison with no `Preferred:` line;
- any callable `(summary_a, summary_b) -> str` returning the whole answer text.

Faults: `faults` is a queue consumed one per request, before the rule answers:
`("status", 429)` answers that HTTP status with an OpenAI-style error body, `("sleep", 1.5)`
waits that many seconds before answering normally (past a client's time-out), `("ok", None)`
answers normally. `always` (same form) applies to every request once the queue is empty, e.g.
`("status", 500)` for a server that never recovers. `delay_s` delays every answer (to observe
concurrency). Every request is recorded (`requests`: body and Authorization header), and
`max_in_flight` is the most requests handled at once.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SUMMARIES = re.compile(r"Summary A:\n(?P<a>.*?)\n\nSummary B:\n(?P<b>.*?)\n\nFIRST", re.DOTALL)
Rule = str | Callable[[str, str], str]


def judgment(preferred: str, why: str = "it states the post's main points") -> str:
    """An answer in the DPO TL;DR format preferring `preferred` ("A" or "B")."""
    return f"Comparison: Summary {preferred} is better because {why}.\nPreferred: {preferred}"


class MockChatServer:
    """Serve chat completions on 127.0.0.1 in a thread; use as a context manager."""

    def __init__(
        self,
        rule: Rule = "longer",
        *,
        faults: list[tuple[str, object]] | None = None,
        always: tuple[str, object] | None = None,
        delay_s: float = 0.0,
    ):
        self.rule = rule
        self.faults = deque(faults or [])
        self.always = always
        self.delay_s = delay_s
        self.requests: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> MockChatServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def next_fault(self) -> tuple[str, object] | None:
        with self._lock:
            return self.faults.popleft() if self.faults else self.always

    def answer(self, prompt: str) -> str:
        match = SUMMARIES.search(prompt)
        if match is None:
            raise ValueError("the prompt holds no 'Summary A:' / 'Summary B:' blocks")
        a, b = match["a"], match["b"]
        if callable(self.rule):
            return self.rule(a, b)
        if self.rule == "longer":
            return judgment("A" if len(a) >= len(b) else "B", "it is more detailed")
        if self.rule == "always_a":
            return judgment("A")
        if self.rule == "malformed":
            return "Comparison: both summaries have merits and I cannot decide."
        raise ValueError(f"unknown rule {self.rule!r}")


def _handler(mock: MockChatServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep the test output clean
            pass

        def _send(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (time-out)
                pass

        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with mock._lock:
                mock.requests.append(
                    {"path": self.path, "body": body, "auth": self.headers.get("Authorization")}
                )
                mock.in_flight += 1
                mock.max_in_flight = max(mock.max_in_flight, mock.in_flight)
            try:
                self._respond(body)
            finally:
                with mock._lock:
                    mock.in_flight -= 1

        def _respond(self, body: dict) -> None:
            if self.path != "/v1/chat/completions":
                self._send(404, {"error": {"message": f"no route {self.path}"}})
                return
            fault = mock.next_fault()
            if fault is not None and fault[0] == "status":
                status = int(fault[1])
                self._send(status, {"error": {"message": f"mock {status}", "type": "mock"}})
                return
            if fault is not None and fault[0] == "sleep":
                time.sleep(float(fault[1]))
            if mock.delay_s:
                time.sleep(mock.delay_s)
            prompt = body["messages"][-1]["content"]
            content = mock.answer(prompt)
            prompt_tokens = sum(len(m["content"].split()) for m in body["messages"])
            completion_tokens = len(content.split())
            self._send(
                200,
                {
                    "id": f"chatcmpl-mock-{len(mock.requests)}",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": content},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {
                        "prompt_tokens": prompt_tokens,
                        "completion_tokens": completion_tokens,
                        "total_tokens": prompt_tokens + completion_tokens,
                    },
                },
            )

    return Handler
