# Two commands do everything: `make demo` and `make test` (see README.md); `make faults` runs the
# fault-injection suite in full (10 runs of each scenario; `make test` ends with one run of each scenario).
PYTHON ?= python3.11
export PYTHON

.PHONY: demo test bench faults venv clean

# The venv holds what runs (requirements.txt), what builds the encoder's ONNX graph
# (requirements-build.txt: torch & co., also used by the encoder's agreement test) and the test tools.
# scripts/venv.sh installs it (and builds the graph) once per pin set into the machine's cache and
# links .venv to it: a second clone on the same machine starts in seconds.
venv:
	scripts/venv.sh

demo: venv
	scripts/demo.sh

test: venv
	scripts/test.sh

bench: venv
	scripts/bench.sh

faults: venv
	scripts/faults.sh

clean:
	scripts/services.sh purge || true
	rm -rf .run db.sqlite3 media
