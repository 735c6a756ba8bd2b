"""A local OpenAI-compatible server for tests: the real `openai` client talks HTTP to it.

Two ways to answer /v1/chat/completions:
- a script: each request takes the next step, the last step repeats. Steps: ("ok", content) |
  ("status", code) | ("slow", seconds, content);
- ("tools", [{"name", "arguments"}, ...]): the model asks for tool calls (finish_reason "tool_calls");
- a responder: `fake.responder = fn(body) -> step` decides from the request (which model was asked,
  what the messages say), for servers that play a candidate or a judge; it may also return a plain
  string (= ("ok", string)).
Every request is recorded (path, headers, body). Usage is 1,000 prompt + 200 completion tokens per
answer unless the step says otherwise (("ok", content, {"prompt_tokens": p, "completion_tokens": c})).
"""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


class FakeOpenAI:
    def __init__(self, responder: Callable[[dict], object] | None = None):
        self.script: list[tuple] = []
        self.responder = responder
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: the client's connection pool is reused

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake._lock:
                    fake.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                                          "body": body})
                    n = len(fake.requests)
                    step = None if fake.responder is not None else fake.script[min(n, len(fake.script)) - 1]
                if step is None:  # outside the lock: a responder may take its time, concurrently
                    step = fake.responder(body)
                if isinstance(step, str):
                    step = ("ok", step)
                if step[0] == "status":
                    payload = json.dumps({"error": {"message": f"status {step[1]}", "type": "fake"}}).encode()
                    self.send_response(step[1])
                    self.send_header("retry-after", "0")
                else:
                    if step[0] == "slow":
                        time.sleep(step[1])
                        content, usage = step[2], (step[3] if len(step) > 3 else {})
                    else:
                        content, usage = step[1], (step[2] if len(step) > 2 else {})
                    p, c = usage.get("prompt_tokens", 1000), usage.get("completion_tokens", 200)
                    message, finish = {"role": "assistant", "content": content}, "stop"
                    if step[0] == "tools":
                        message, finish = {"role": "assistant", "content": None, "tool_calls": [
                            {"id": f"call_{n}_{i}", "type": "function",
                             "function": {"name": t["name"], "arguments": t["arguments"]}}
                            for i, t in enumerate(content)]}, "tool_calls"
                    payload = json.dumps({
                        "id": f"chatcmpl-{n}", "object": "chat.completion", "created": 0, "model": body["model"],
                        "choices": [{"index": 0, "finish_reason": finish, "message": message}],
                        "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c},
                    }).encode()
                    self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                try:
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and left

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
