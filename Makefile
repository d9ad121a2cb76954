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
	@echo "make bench     latency/accuracy report (bench.md + bench.html) per backend x precision"
	@echo "               for the models \`make engines\` built, on the demo data"

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

ENGINES_CMD = $(BIN)/edgedistal engines --export-dir export --out engines --demo-if-missing \
              --demo-checkpoint $(OUT)/detector.pt

engines: install $(OUT)/detector.pt
	$(ENGINES_CMD)

engines/engines.json: $(OUT)/detector.pt | install
	$(ENGINES_CMD)

# benchmarks what `make engines` built (TensorRT engines, or the ONNX Runtime fallback models)
bench: install engines/engines.json
	$(BIN)/edgedistal bench --demo --demo-dir $(OUT) --engine-dir engines --iters 50 --out $(OUT)/bench

clean:
	rm -rf $(VENV) $(OUT) export/*.onnx export/*.json engines/*.engine engines/*.onnx engines/*.json engines/timing.cache
