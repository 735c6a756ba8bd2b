# Two commands do everything: `make demo` and `make test` (see README.md).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench venv clean

# The venv holds what runs (requirements.txt), what builds the encoder's ONNX graph
# (requirements-build.txt: torch & co., also used by the encoder's agreement test) and the test tools.
$(STAMP): requirements.txt requirements-build.txt requirements-test.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements-build.txt -r requirements-test.txt
	$(PY) -m rephrase.encoder build
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	scripts/demo.sh

test: $(STAMP)
	scripts/test.sh

bench: $(STAMP)
	scripts/bench.sh

clean:
	scripts/services.sh purge || true
	rm -rf .run db.sqlite3 media
