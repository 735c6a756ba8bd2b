"""A local chat upstream that answers plain JSON or server-sent events, and a proxy served by uvicorn on a
thread of the test process: the real ASGI app, the real httpx forwarding, the real recorder threads."""
from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import uvicorn


def answer_for(body: dict) -> str:
    last = [m for m in body.get("messages", []) if m.get("role") == "user"][-1]["content"]
    return f"You asked: {last}. Here is the answer, ünïcode included."


class ChatUpstream:
    """Streams its answer in three SSE chunks; `hold` (an Event) keeps the rest of a stream back after
    the first chunk until the test sets it."""

    def __init__(self):
        self.requests: list[dict] = []
        self.hold: threading.Event | None = None
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                payload = json.dumps({"object": "list", "data": [{"id": "served-model", "object": "model"}]}).encode()
                self._send(200, "application/json", payload)

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                upstream.requests.append(body)
                if body.get("model") == "rate-limited":
                    payload = b'{"error": {"message": "slow down", "type": "rate_limit"}}'
                    return self._send(429, "application/json", payload)
                answer = answer_for(body)
                if not body.get("stream"):
                    payload = json.dumps({"id": "chatcmpl-1", "object": "chat.completion", "created": 1,
                                          "model": "served-model",
                                          "choices": [{"index": 0, "finish_reason": "stop",
                                                       "message": {"role": "assistant", "content": answer}}],
                                          "usage": {"prompt_tokens": 9, "completion_tokens": 12, "total_tokens": 21}},
                                         ensure_ascii=False).encode()
                    return self._send(200, "application/json", payload)
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                third = len(answer) // 3
                for i, piece in enumerate((answer[:third], answer[third:2 * third], answer[2 * third:])):
                    chunk = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
                             "model": "served-model",
                             "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
                    self._chunk(f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode())
                    if i == 0 and upstream.hold is not None:
                        upstream.hold.wait(30)
                self._chunk(b"data: [DONE]\n\n")
                self._chunk(b"")

            def _chunk(self, data: bytes):
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def _send(self, status, ctype, payload):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        if self.hold is not None:
            self.hold.set()
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServedProxy:
    """uvicorn serving the app on a thread; `stop()` ends the server, then the recorder (which flushes)."""

    def __init__(self, app, recorder):
        self.recorder = recorder
        port = free_port()
        self.url = f"http://127.0.0.1:{port}/v1"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on",
                                                    log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the proxy did not start")
            self.thread.join(0.02)

    def stop(self):
        self.server.should_exit = True
        self.thread.join(30)
        if self.recorder is not None:
            self.recorder.stop()
