"""bench says when its timings are noise, and heads each report with one comparison line."""

from __future__ import annotations

from edgedistal.bench.report import headlines, noise_warnings, render_markdown


def _row(backend, prec, batch, ips, p50=1.0, p99=1.2):
    return {"backend": backend, "precision": prec, "batch": batch, "device": "cpu", "skipped_reason": None,
            "throughput_ips": ips, "latency_ms": {"p50": p50, "p90": p99, "p95": p99, "p99": p99, "mean": p50},
            "compute_ms": None, "peak_host_mb": 1.0, "peak_device_mb": None, "accuracy": None}


def _report(rows, load=(0.1, 0.1, 0.1), stable=True, dot="AVX-512 VNNI (VPDPBUSD)"):
    return {"rows": rows, "schema_version": 1, "config": {"profile": "default"}, "method": [],
            "environment": {"cpu_logical_cores": 2, "cpu_affinity": 2, "loadavg_start": list(load),
                            "loadavg_end": list(load), "int8_dot_product": dot},
            "stability": None if stable else {"tolerance": 0.15, "all_stable": False, "method": "m", "rows": [
                {"backend": "onnxruntime", "precision": "int8", "batch": 32, "pass": 2, "p50_pass1": 1.0,
                 "p50_pass2": 2.0, "p50_rel_change": 1.0, "p99_pass1": 1.2, "p99_pass2": 2.4,
                 "p99_rel_change": 1.0, "stable": False}]}}


def test_headline_names_the_speedup_at_batch_32():
    rep = _report([_row("onnxruntime", "fp32", 1, 100), _row("onnxruntime", "int8", 1, 300),
                   _row("onnxruntime", "fp32", 32, 200), _row("onnxruntime", "int8", 32, 568)])
    assert headlines(rep) == ["int8 is 2.8× fp32 at batch 32 on this CPU (onnxruntime: 568 vs 200 img/s)"]
    assert noise_warnings(rep) == []
    assert "**int8 is 2.8× fp32 at batch 32" in render_markdown(rep)


def test_a_loaded_machine_noisy_repeats_tails_and_slow_int8_are_said():
    rep = _report([_row("onnxruntime", "fp32", 32, 0.4, p50=1.0, p99=9.0), _row("onnxruntime", "int8", 32, 0.3)],
                  load=(6.3, 3.0, 1.0), stable=False, dot="AVX2 only (VPMADDUBSW, no VNNI)")
    text = " | ".join(noise_warnings(rep))
    assert "machine was busy (1-min load 6.3 on 2 core(s))" in text and "unreliable" in text
    assert "changed by more than 15% between repeats" in text
    assert "p99 > 3× p50" in text
    assert "int8 is slower than fp32 in 1 row(s)" in text and "no VNNI" in text
    assert "0.3 vs 0.4 img/s" in headlines(rep)[0]  # three digits, never "0 img/s"
    assert "**Warning:** the machine was busy" in render_markdown(rep)


def test_bench_html_heads_with_the_same_headline_and_warnings():
    from edgedistal.bench.html import render_html

    rep = _report([_row("onnxruntime", "fp32", 32, 0.4, p50=1.0, p99=9.0), _row("onnxruntime", "int8", 32, 0.3)],
                  load=(6.3, 3.0, 1.0))
    page = render_html(rep, {}, headlines=headlines(rep), warnings=noise_warnings(rep))
    assert "<strong>int8 is 0.75× fp32 at batch 32" in page
    assert "machine was busy (1-min load 6.3 on 2 core(s))" in page
    assert page.index("machine was busy") < page.index("All measured rows")  # first, not buried
