# edgedistal — the two commands a new user needs: `make demo` and `make test`.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
OUT     ?= demo_out

.PHONY: install demo test test-all lint engines bench gpu-check clean help

help:
	@echo "make install   create $(VENV) and install edgedistal with dev extras"
	@echo "make demo      install, then run the whole pipeline on a generated dataset ($(OUT)/)"
	@echo "make test      install, then run the test suite (real-data tests skip without ../shared)"
	@echo "make lint      ruff"
	@echo "make engines   export the demo detector to export/, build TensorRT engines in engines/"
	@echo "               (without TensorRT: says so and builds the ONNX Runtime fp16/int8 models)"
	@echo "make bench     latency/accuracy report per backend x precision on the demo data"

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e ".[dev]"
	@touch $@

demo: install
	$(BIN)/edgedistal demo --out $(OUT)

test: install
	$(BIN)/python -m pytest -q -ra

lint: install
	$(BIN)/ruff check edgedistal tests benchmarks scripts

$(OUT)/detector.pt: | install
	$(BIN)/edgedistal demo --out $(OUT)

engines: install $(OUT)/detector.pt
	$(BIN)/edgedistal engines --export-dir export --out engines --demo-if-missing

bench: install $(OUT)/detector.pt
	$(BIN)/edgedistal bench --demo --demo-dir $(OUT) --iters 50 --out $(OUT)/bench

clean:
	rm -rf $(VENV) $(OUT) export/*.onnx export/*.json engines/*.engine engines/*.json
