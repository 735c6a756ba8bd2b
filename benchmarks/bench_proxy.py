"""Median latency the mirroring proxy adds over a direct call (issue #20: at most 5 ms), measured in
one run on one machine: a local upstream answering at once (its own process), the proxy as users run
it (`manage.py proxy`, recording every call into the configured database, its own process), and this
process calling both in turn with one keep-alive client, plain and streamed (time to the last byte).

Run through `make bench` (Postgres up), or alone:
    .venv/bin/python benchmarks/bench_proxy.py [--calls 2000]
"""
import argparse
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
TARGET_MS = 5.0
ANSWER = "Open Settings, then Security, then choose 'Reset password'; the link arrives within a minute. " * 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def upstream_app(scope, receive, send):
    """An OpenAI-compatible upstream that answers at once: all the time measured is transport."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["method"] == "GET":
        payload = b'{"object": "list", "data": [{"id": "served", "object": "model"}]}'
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": payload})
        return
    stream = json.loads(body).get("stream")
    if not stream:
        payload = json.dumps({"id": "chatcmpl-b", "object": "chat.completion", "created": 1, "model": "served",
                              "choices": [{"index": 0, "finish_reason": "stop",
                                           "message": {"role": "assistant", "content": ANSWER}}],
                              "usage": {"prompt_tokens": 30, "completion_tokens": 60, "total_tokens": 90}}).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
    words = ANSWER.split(" ")
    for i in range(0, len(words), 8):
        chunk = {"id": "chatcmpl-b", "object": "chat.completion.chunk", "created": 1, "model": "served",
                 "choices": [{"index": 0, "delta": {"content": " ".join(words[i:i + 8]) + " "}, "finish_reason": None}]}
        await send({"type": "http.response.body", "body": f"data: {json.dumps(chunk)}\n\n".encode(), "more_body": True})
    await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})


def serve_upstream(port: int) -> None:
    import uvicorn

    uvicorn.run(upstream_app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def wait_listening(http: httpx.Client, url: str, proc=None) -> None:
    while True:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"{url}: the process exited ({proc.returncode})")
        try:
            http.get(url)
            return
        except httpx.TransportError:
            time.sleep(0.2)


def timed(http: httpx.Client, url: str, body: dict, headers: dict) -> tuple[float, bytes]:
    started = time.perf_counter()
    with http.stream("POST", url, json=body, headers=headers) as r:
        content = r.read()
    return (time.perf_counter() - started) * 1000, content


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=2000, help="calls per way and mode")
    ap.add_argument("--warmup", type=int, default=100)
    args = ap.parse_args()

    up_port, proxy_port = free_port(), free_port()
    upstream = multiprocessing.Process(target=serve_upstream, args=(up_port,), daemon=True)
    upstream.start()
    direct = f"http://127.0.0.1:{up_port}/v1"
    proxied = f"http://127.0.0.1:{proxy_port}/v1"
    proxy = subprocess.Popen([sys.executable, "manage.py", "proxy", "--listen", f"127.0.0.1:{proxy_port}",
                              "--upstream", direct, "--source", "bench-proxy", "--json"],
                             cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = {"calls_per_way": args.calls, "target_added_median_ms": TARGET_MS}
    try:
        with httpx.Client(timeout=30) as http:
            wait_listening(http, direct + "/models")
            wait_listening(http, f"http://127.0.0.1:{proxy_port}/_evalgap/stats", proxy)
            for mode in ("plain", "stream"):
                times = {"direct": [], "proxy": []}
                for i in range(args.warmup + args.calls):
                    body = {"model": "served", "stream": mode == "stream", "user": f"u{i % 50}",
                            "messages": [{"role": "system", "content": "Be brief."},
                                         {"role": "user", "content": f"how do I reset my password ({i})"}]}
                    # Alternate which goes first, so neither way always meets a warmer cache.
                    order = ("direct", "proxy") if i % 2 else ("proxy", "direct")
                    got = {}
                    for way in order:
                        ms, got[way] = timed(http, (direct if way == "direct" else proxied) + "/chat/completions",
                                             body, {"X-Session-Id": f"s{i % 50}"} if way == "proxy" else {})
                        if i >= args.warmup:
                            times[way].append(ms)
                    assert got["direct"] == got["proxy"], "the proxy changed the answer"
                added = [p - d for p, d in zip(times["proxy"], times["direct"])]
                out[mode] = {
                    "direct_median_ms": round(statistics.median(times["direct"]), 3),
                    "proxy_median_ms": round(statistics.median(times["proxy"]), 3),
                    "added_median_ms": round(statistics.median(times["proxy"]) - statistics.median(times["direct"]), 3),
                    "added_paired_median_ms": round(statistics.median(added), 3),
                    "added_p90_ms": round(statistics.quantiles(added, n=10)[-1], 3),
                }
                out[mode]["met"] = out[mode]["added_median_ms"] <= TARGET_MS
    finally:
        proxy.send_signal(2)
        stdout, stderr = proxy.communicate(timeout=120)
        upstream.terminate()
    lines = stdout.decode().strip().splitlines()
    out["proxy_counters"] = json.loads(lines[-1]) if lines else {"error": stderr.decode()[-500:]}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
