"""Bench: percentiles from recorded samples, accuracy columns, skips, schema, CLI smoke."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgedistal.bench.jetson import count_flops, jetson_estimate
from edgedistal.bench.report import render_markdown, validate_report, write_report
from edgedistal.bench.run import BenchConfig, accuracy_metrics, run_bench, summarize, time_calls
from edgedistal.runtime.base import BackendInfo


class FakeClock:
    """perf_counter stand-in that the fake backend advances by scripted latencies."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class FakeBackend:
    """Returns fixed probabilities; each infer() advances the clock by the next scripted latency."""

    image_size = 8

    def __init__(self, name: str, precision: str, probs: np.ndarray, clock: FakeClock, latencies_ms: list[float]):
        self.info = BackendInfo(name, "cpu", precision, "fake")
        self.probs, self.clock, self.lat = probs, clock, list(latencies_ms)
        self.calls, self.closed = 0, False

    def infer(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        assert images.dtype == np.uint8 and images.shape[1:] == (8, 8, 3)
        self.clock.t += self.lat[self.calls % len(self.lat)] / 1e3
        self.calls += 1
        idx = images[:, 0, 0, 0].astype(int)  # image i carries its index in pixel (0,0,0)
        return self.probs[idx].astype(np.float32), np.ones((len(images), 4), np.float32)

    def close(self) -> None:
        self.closed = True


def _images(n: int) -> np.ndarray:
    x = np.zeros((n, 8, 8, 3), np.uint8)
    x[:, 0, 0, 0] = np.arange(n)
    return x


def test_summarize_known_series() -> None:
    # 1..100 ms: linear-interpolated percentiles are known in closed form
    s = summarize(np.arange(1, 101, dtype=float))
    assert s["p50"] == pytest.approx(50.5)
    assert s["p90"] == pytest.approx(90.1)
    assert s["p95"] == pytest.approx(95.05)
    assert s["p99"] == pytest.approx(99.01)
    assert (s["mean"], s["min"], s["max"], s["n"]) == (pytest.approx(50.5), 1.0, 100.0, 100)
    assert s["min"] <= s["p50"] <= s["p90"] <= s["p95"] <= s["p99"] <= s["max"]


def test_time_calls_records_scripted_samples_after_warmup() -> None:
    clock = FakeClock()
    script = iter([1000.0, 1000.0] + [float(v) for v in range(1, 21)])  # 2 slow warm-up calls

    def fn() -> None:
        clock.t += next(script) / 1e3

    samples = time_calls(fn, warmup=2, iters=20, clock=clock)
    np.testing.assert_allclose(samples, np.arange(1, 21), atol=1e-9)
    s = summarize(samples)
    assert s["p50"] == pytest.approx(10.5) and s["p99"] == pytest.approx(19.81)


def test_time_calls_min_time() -> None:
    clock = FakeClock()

    def fn() -> None:
        clock.t += 0.1  # 100 ms per call

    samples = time_calls(fn, warmup=0, iters=1000, min_time_s=1.0, clock=clock, min_iters=3)
    assert len(samples) in (10, 11)  # stops once 1 s is recorded (float rounding may need one more)


def _run(precisions=("fp32", "int8"), backends=("onnxruntime",), available=("onnxruntime", "torch"), repeat=1):
    clock = FakeClock()
    n = 40
    labels = np.array([0] * 20 + [1] * 20)
    fp32 = np.linspace(0.05, 0.95, n)  # monotone in index → perfect AUC
    int8 = fp32.copy()
    int8[3] += 0.07  # one known drift
    made: list[FakeBackend] = []

    def factory(name: str, precision: str, batch_size: int) -> FakeBackend:
        if name == "torch" and precision == "fp32":
            raise RuntimeError("checkpoint missing")
        lat = [2.0, 4.0, 6.0, 8.0] if precision == "fp32" else [1.0, 3.0]
        be = FakeBackend(name, precision, int8 if precision == "int8" else fp32, clock, lat)
        made.append(be)
        return be

    cfg = BenchConfig(backends=list(backends), precisions=list(precisions), batches=[1, 4], warmup=3, iters=8, repeat=repeat)
    report = run_bench(lambda size: _images(n), labels, cfg, factory, list(available), clock=clock)
    return report, made, labels, fp32


def test_run_bench_latency_and_accuracy_columns() -> None:
    report, made, labels, fp32 = _run()
    rows = {(r["backend"], r["precision"], r["batch"]): r for r in report["rows"]}
    r32, r8 = rows[("onnxruntime", "fp32", 1)], rows[("onnxruntime", "int8", 4)]
    # scripted 2,4,6,8 ms cycle, 8 samples: p50 = 5, mean = 5, p99 from the samples
    assert r32["latency_ms"]["p50"] == pytest.approx(5.0)
    assert r32["latency_ms"]["p99"] == pytest.approx(8.0)
    assert r32["throughput_ips"] == pytest.approx(1 / 0.005)
    assert r8["latency_ms"]["mean"] == pytest.approx(2.0)
    assert r8["throughput_ips"] == pytest.approx(4 / 0.002)
    assert r32["accuracy"]["auc"] == pytest.approx(1.0)
    assert r32["accuracy"]["balanced_acc"] == pytest.approx(1.0)  # 0.5 threshold splits exactly at 20
    assert r32["accuracy"]["max_abs_dp_vs_fp32"] == pytest.approx(0.0)
    assert r8["accuracy"]["max_abs_dp_vs_fp32"] == pytest.approx(0.07)
    assert all(b.closed for b in made)
    assert r32["peak_host_mb"] > 0 and r32["compute_ms"] is None


def test_accuracy_metrics_against_sklearn_definition() -> None:
    labels = np.array([0, 0, 1, 1, 1])
    probs = np.array([0.6, 0.2, 0.7, 0.4, 0.9])
    m = accuracy_metrics(labels, probs, reference=np.array([0.6, 0.2, 0.7, 0.5, 0.9]))
    # pairs (neg, pos): 0.6 vs {0.7,0.4,0.9} → 2 wins; 0.2 vs all → 3 wins; 5/6
    assert m["auc"] == pytest.approx(5 / 6)
    # real recall 1/2, fake recall 2/3
    assert m["balanced_acc"] == pytest.approx((0.5 + 2 / 3) / 2)
    assert m["max_abs_dp_vs_fp32"] == pytest.approx(0.1)
    assert accuracy_metrics(np.ones(3, int), np.array([0.1, 0.9, 0.8]))["auc"] is None


def test_skipped_combos_have_reasons() -> None:
    report, *_ = _run(precisions=("fp32", "fp16", "int8"), backends=("all",))
    rows = report["rows"]
    reasons = {(r["backend"], r["precision"]): r["skipped_reason"] for r in rows if r["skipped_reason"]}
    assert "int8" in reasons[("torch", "int8")]
    assert "fp16 on CPU" in reasons[("torch", "fp16")]
    assert "checkpoint missing" in reasons[("torch", "fp32")]
    assert "not available" in reasons[("tensorrt", "fp32")]
    assert "not available" in reasons[("onnxruntime-gpu", "int8")]
    measured = {(r["backend"], r["precision"]) for r in rows if not r["skipped_reason"]}
    # ORT's fp16 CPU path is measured: `make engines` builds it and the bench must show it
    assert measured == {("onnxruntime", "fp32"), ("onnxruntime", "fp16"), ("onnxruntime", "int8")}
    for r in rows:
        assert (r["latency_ms"] is None) == bool(r["skipped_reason"])


def test_stability_and_schema(tmp_path: Path) -> None:
    report, *_ = _run(repeat=2)
    st = report["stability"]
    assert st["rows"] and st["all_stable"]  # scripted latencies repeat exactly
    full = {"schema_version": 1, "environment": {"cpu_model": "x", "cpu_logical_cores": 2, "versions": {}, "gpu": None},
            "config": {"profile": "default"}, "method": ["m"], **report}
    files = write_report(full, tmp_path)
    data = json.loads(files["json"].read_text())
    validate_report(data)
    assert "STABLE" in files["markdown"].read_text()
    assert files["latency_png"].read_bytes()[:4] == b"\x89PNG"
    bad = json.loads(json.dumps(data))
    bad["rows"][0]["latency_ms"]["p99"] = bad["rows"][0]["latency_ms"]["min"] - 1
    del bad["rows"][1]["accuracy"]
    with pytest.raises(ValueError, match="not ordered") as e:
        validate_report(bad)
    assert "accuracy missing" in str(e.value)


def test_jetson_estimate_is_labelled() -> None:
    from edgedistal.models.registry import Detector, DetectorConfig

    flops = count_flops(Detector(DetectorConfig(backbone="resnet18", image_size=32)), 32)
    # resnet18: 1.82 GMAC at 224 px → ×2 FLOPs, scales with pixel count (32/224)^2
    assert flops == pytest.approx(2 * 1.82e9 * (32 / 224) ** 2, rel=0.05)
    est = jetson_estimate(flops, utilisation=0.5)
    assert "ESTIMATE" in est["label"]
    nano = next(r for r in est["rows"] if r["device"].startswith("Jetson Orin Nano") and r["precision"] == "int8")
    assert nano["estimated_latency_ms"] == pytest.approx(flops / (20e12 * 0.5) * 1e3)
    md = render_markdown({"schema_version": 1, "environment": {}, "config": {}, "method": [], "rows": [],
                          "jetson_estimate": est})
    assert md.count("ESTIMATE") >= 5


def test_cli_smoke(tmp_path: Path, synth_dir: Path) -> None:
    pytest.importorskip("edgedistal.runtime.select")
    import pandas as pd
    import torch
    from click.testing import CliRunner

    from edgedistal.commands.bench import bench
    from edgedistal.data.manifest import Manifest
    from edgedistal.models.registry import Detector, DetectorConfig, save_checkpoint

    torch.set_num_threads(1)
    meta = pd.read_csv(synth_dir / "metadata.csv").head(24)
    m = Manifest.from_records([
        {"sample_id": str(i), "path": str(synth_dir / r.path), "label": int(r.label == "FAKE"),
         "group": r.group, "video": r.video, "frame": int(r.frame), "source": "synth", "method": "",
         "split": "test"}
        for i, r in enumerate(meta.itertuples())
    ])
    m.save(tmp_path / "m.parquet")
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "c.pt", Detector(DetectorConfig(backbone="resnet18", image_size=32)))
    out = tmp_path / "out"
    res = CliRunner().invoke(bench, [
        "--manifest", str(tmp_path / "m.parquet"), "--checkpoint", str(tmp_path / "c.pt"),
        "--backends", "torch", "--precisions", "fp32,int8", "--batch", "1,4", "--warmup", "1",
        "--iters", "3", "--out", str(out),
    ])
    assert res.exit_code == 0, res.output + repr(res.exception)
    data = json.loads((out / "bench.json").read_text())
    validate_report(data)
    rows = {(r["backend"], r["precision"], r["batch"]): r for r in data["rows"]}
    assert rows[("torch", "fp32", 4)]["latency_ms"]["n"] == 3
    assert rows[("torch", "int8", 1)]["skipped_reason"]
    assert data["environment"]["cpu_model"]
    assert (out / "bench.md").exists() and (out / "latency.png").exists()
    page = (out / "bench.html").read_text()
    assert "data:image/png;base64," in page and "latency percentiles" in page.lower()
    # nothing measurable (torch has no int8): the report is written, the exit code says so
    from edgedistal.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["bench", "--manifest", str(tmp_path / "m.parquet"), "--checkpoint", str(tmp_path / "c.pt"),
              "--backends", "torch", "--precisions", "int8", "--batch", "1", "--out", str(tmp_path / "none")])
    assert exc.value.code == 2 and (tmp_path / "none" / "bench.json").exists()
    # jetson profile: batch 1, fp16+int8 only; on CPU torch gets skip rows, and the estimate is labelled
    res = CliRunner().invoke(bench, [
        "--manifest", str(tmp_path / "m.parquet"), "--checkpoint", str(tmp_path / "c.pt"),
        "--backends", "torch", "--profile", "jetson", "--out", str(tmp_path / "jet"),
    ])
    assert res.exit_code == 0, res.output + repr(res.exception)
    jet = json.loads((tmp_path / "jet" / "bench.json").read_text())
    assert {(r["precision"], r["batch"]) for r in jet["rows"]} == {("fp16", 1), ("int8", 1)}
    assert all(r["skipped_reason"] for r in jet["rows"])
    assert jet["jetson_estimate"]["flops_per_image"] > 0 and "ESTIMATE" in jet["jetson_estimate"]["label"]
    assert jet["config"]["workspace_mb"] and "ESTIMATE" in (tmp_path / "jet" / "bench.md").read_text()


def test_workspace_cap_reaches_the_backend_that_builds_an_engine(monkeypatch, tmp_path):
    """The jetson profile's cap is applied (ORT's TensorRT EP), not only recorded."""
    from edgedistal.bench.run import runtime_factory
    from edgedistal.runtime import ort_backend, select

    seen: dict = {}
    monkeypatch.setattr(select, "open_backend", lambda spec: seen.update(vars(spec)) or "backend")
    factory, _, notes = runtime_factory(None, str(tmp_path), None, "cuda", 1024)
    assert factory("onnxruntime-gpu", "fp16", 1) == "backend" and seen["workspace_mb"] == 1024
    assert "trt_max_workspace_size" in notes["workspace_applied"]

    class FakeSession:
        def __init__(self, path, so, providers):
            seen["providers"] = providers
            raise RuntimeError("stop after the provider list")

    class FakeOrt:
        SessionOptions = type("SessionOptions", (), {})
        GraphOptimizationLevel = type("G", (), {"ORT_ENABLE_ALL": 99})
        InferenceSession = FakeSession

    model = tmp_path / "model_fp16.onnx"
    model.write_bytes(b"x")
    monkeypatch.setattr(ort_backend, "_ort", lambda: FakeOrt)
    monkeypatch.setattr(ort_backend, "gpu_providers", lambda: ["TensorrtExecutionProvider"])
    with pytest.raises(Exception, match="cannot load"):
        ort_backend.OrtBackend(model, "fp16", "cuda", 1, workspace_mb=1024)
    trt_opts = dict(seen["providers"][0][1])
    assert trt_opts["trt_max_workspace_size"] == 1024 << 20
