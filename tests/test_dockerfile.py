"""The Dockerfile's encoder build, run (no Docker engine here): the build stage's own RUN line that
builds the rephrase encoder is executed as written, with the stage's environment, into a temporary
directory standing for the stage's output; that directory is copied as the `COPY --from=encoder`
line copies it; then the runtime stage's environment is given to Django, and the graph the
settings resolve to must be the one built, loadable by onnxruntime, with no build at first use
(the runtime image has no torch)."""
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def stages() -> dict[str, dict]:
    """name -> {"env": {...}, "run": [commands], "copy_from": [(stage, src, dest)]}; "" is the last stage."""
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    out, current = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "FROM":
            m = re.search(r"\bAS\s+(\S+)", rest, re.I)
            current = {"env": {}, "run": [], "copy_from": [], "workdir": "/"}
            out[m.group(1) if m else f"stage{len(out)}"] = current
        elif word == "ENV":
            current["env"].update(dict(p.split("=", 1) for p in shlex.split(rest)))
        elif word == "RUN":
            current["run"].append(rest)
        elif word == "WORKDIR":
            current["workdir"] = rest
        elif word == "COPY" and rest.startswith("--from="):
            stage, src, dest = rest[len("--from="):].split()
            current["copy_from"].append((stage, src, dest))
    last = list(out)[-1]
    out[""] = out[last]
    return out


def test_the_dockerfile_names_no_variable_the_code_does_not_read():
    text = (REPO / "Dockerfile").read_text()
    assert "EVALGAP_ENCODER_DIR" not in text
    settings = (REPO / "evalgap" / "settings.py").read_text()
    for var in re.findall(r"\b([A-Z][A-Z0-9_]*_DIR)=", text):
        assert f'"{var}"' in settings, var


@pytest.mark.skipif(not shutil.which("sh"), reason="needs a POSIX shell")
def test_the_encoder_build_step_puts_the_graph_where_the_runtime_settings_read_it(tmp_path):
    pytest.importorskip("torch")  # the build stage's packages (requirements-build.txt)
    st = stages()
    build = st["encoder"]
    (run,) = [r for r in build["run"] if "rephrase.encoder" in r]
    (copy,) = [c for c in st[""]["copy_from"] if c[0] == "encoder"]
    _, src, dest = copy
    stage_out, image_dir = tmp_path / "stage-out", tmp_path / "image-encoder"
    # The build stage's RUN line as written, its output directory mapped to a temporary one. The
    # stage copies rephrase/ into its WORKDIR and runs there: the repository is that directory.
    command = run.replace(src.rstrip("/"), str(stage_out))
    assert command != run, f"the RUN line does not write to {src}, which COPY --from=encoder copies"
    venv_bin = str(Path(sys.executable).parent)
    env = {**{k: v for k, v in os.environ.items() if k != "REPHRASE_ENCODER_DIR"}, **build["env"],
           "PATH": venv_bin + os.pathsep + os.environ.get("PATH", "")}
    proc = subprocess.run(["sh", "-c", command], cwd=REPO, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    built = [p for p in stage_out.rglob("*.onnx")]
    assert len(built) == 1, list(stage_out.rglob("*"))
    # COPY --from=encoder SRC DEST
    shutil.copytree(stage_out, image_dir)
    runtime_env = st[""]["env"]
    assert runtime_env.get("REPHRASE_ENCODER_DIR", "").rstrip("/") == dest.rstrip("/")
    # The runtime image's environment, DEST mapped to the copy: where do settings look, is it there,
    # and does the encoder load it without building (the image has no torch to build with)?
    code = ("import django; django.setup()\n"
            "from django.conf import settings\n"
            "from rephrase import encoder\n"
            "encoder.ensure_built = None  # a build at first use would be a failure in the image\n"
            "path = encoder.onnx_path(settings.REPHRASE_ENCODER_DIR)\n"
            "import onnxruntime\n"
            "onnxruntime.InferenceSession(str(path), providers=['CPUExecutionProvider'])\n"
            "print(settings.REPHRASE_ENCODER_DIR); print(path); print(path.exists())\n")
    run_env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "REPHRASE_"))}
    run_env.update({k: v for k, v in runtime_env.items() if k != "REPHRASE_ENCODER_DIR"})
    run_env.update({"REPHRASE_ENCODER_DIR": str(image_dir), "DJANGO_DEBUG": "true",
                    "DJANGO_SETTINGS_MODULE": "evalgap.settings"})
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=run_env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    settings_dir, path, exists = out.stdout.split()[-3:]
    assert settings_dir == str(image_dir) and exists == "True"
    assert Path(path).name == built[0].name and Path(path).read_bytes() == built[0].read_bytes()
