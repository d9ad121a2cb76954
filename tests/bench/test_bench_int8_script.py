"""benchmarks/bench_int8_cpu.py on tiny inputs: the plumbing the lead's timed run relies on."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_run_writes_ratios_kernels_and_flags(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("bench_int8_cpu", ROOT / "benchmarks" / "bench_int8_cpu.py")
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    doc = mod.main(["--quick", "--threads", "1", "--batches", "4,1", "--no-tensorrt-target",
                    "--out", str(tmp_path / "r")])
    m = doc["models"][0]
    assert {(r["batch"], r["backend"]) for r in m["rows"]} == {
        (b, k) for b in (4, 1) for k in ("torch-fp32", "ort-fp32", "ort-int8-cpu")}
    assert m["kernels"]["ort-int8-cpu"]["integer_nodes"] > 0 and m["kernels"]["ort-fp32"]["integer_nodes"] == 0
    assert set(m["verdict"]["per_batch"]) == {1, 4} and "cpu_flags" in doc["environment"]
    assert json.loads((tmp_path / "r.json").read_text())["benchmark"] == "bench_int8_cpu"
    assert "× ORT fp32" in (tmp_path / "r.md").read_text()
