"""Render a bench report: ``bench.json`` (validated schema), ``bench.md``, ``bench.html`` and PNG plots.

Kept apart from the measuring code so a report can be re-rendered (or validated in CI) from its
JSON alone, without torch or any backend installed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from edgedistal.bench.html import save_figure
from edgedistal.utils.io import read_json, write_json_atomic, write_text_atomic

SCHEMA_VERSION = 1
_NUM = (int, float)
ROW_FIELDS: dict[str, tuple[type, ...]] = {
    "backend": (str,), "device": (str,), "precision": (str,), "batch": (int,),
    "latency_ms": (dict, type(None)), "compute_ms": (dict, type(None)),
    "throughput_ips": (*_NUM, type(None)), "peak_host_mb": (*_NUM, type(None)),
    "peak_device_mb": (*_NUM, type(None)), "accuracy": (dict, type(None)),
    "skipped_reason": (str, type(None)),
}
LATENCY_FIELDS = ("samples_summary", "p50", "p90", "p95", "p99", "mean", "min", "max", "n")
ACCURACY_FIELDS = ("auc", "balanced_acc", "max_abs_dp_vs_fp32")


def validate_report(report: dict[str, Any]) -> None:
    """Raise ValueError listing every schema problem (required keys, types, ordering)."""
    errs: list[str] = []
    if report.get("schema_version") != SCHEMA_VERSION:
        errs.append(f"schema_version must be {SCHEMA_VERSION}, got {report.get('schema_version')!r}")
    for key in ("environment", "rows", "config", "method"):
        if key not in report:
            errs.append(f"missing top-level key {key!r}")
    env = report.get("environment") or {}
    for key in ("cpu_model", "cpu_logical_cores", "versions", "gpu"):
        if key not in env:
            errs.append(f"environment.{key} missing")
    for i, row in enumerate(report.get("rows") or []):
        where = f"rows[{i}]"
        for key, types in ROW_FIELDS.items():
            if key not in row:
                errs.append(f"{where}.{key} missing")
            elif not isinstance(row[key], types) or isinstance(row[key], bool):
                errs.append(f"{where}.{key} has type {type(row[key]).__name__}")
        if row.get("skipped_reason"):
            continue
        for block in ("latency_ms", "compute_ms"):
            lat = row.get(block)
            if lat is None:
                if block == "latency_ms":
                    errs.append(f"{where}: measured row without latency_ms")
                continue
            missing = [k for k in LATENCY_FIELDS if k not in lat]
            if missing:
                errs.append(f"{where}.{block} missing {missing}")
                continue
            order = [lat["min"], lat["p50"], lat["p90"], lat["p95"], lat["p99"], lat["max"]]
            if any(a > b for a, b in zip(order, order[1:], strict=False)):
                errs.append(f"{where}.{block}: percentiles not ordered min<=p50<=p90<=p95<=p99<=max")
            if not lat["min"] <= lat["mean"] <= lat["max"]:
                errs.append(f"{where}.{block}: mean outside [min, max]")
        acc = row.get("accuracy")
        if acc is not None:
            missing = [k for k in ACCURACY_FIELDS if k not in acc]
            if missing:
                errs.append(f"{where}.accuracy missing {missing}")
    if errs:
        raise ValueError("invalid bench report:\n  " + "\n  ".join(errs))


# -- markdown ------------------------------------------------------------------------------------
def _f(x: Any, nd: int = 2) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.{nd}f}"
    return str(x)


#: A p99 more than this many times the p50: the tail is another process, not the model.
TAIL_RATIO = 3.0
#: One-minute load average per core above this at start or end: other work shared the cores.
LOAD_PER_CORE = 0.8


def _ips(x: float) -> str:
    """Images/s with 3 significant digits (never "0 img/s" for a slow row)."""
    return f"{x:.3g}" if x < 1000 else f"{x:,.0f}"


def headlines(report: dict[str, Any]) -> list[str]:
    """One line per backend family: int8 (and fp16) vs fp32 throughput at batch 32 (or the largest
    batch both measured), e.g. "int8 is 2.8× fp32 at batch 32 on this CPU (onnxruntime)"."""
    rows = [r for r in report.get("rows", []) if not r.get("skipped_reason") and r.get("throughput_ips")]
    by = {(r["backend"], r["precision"], r["batch"]): r for r in rows}
    where = "this GPU" if any(str(r.get("device", "")).startswith("cuda") for r in rows) else "this CPU"
    out = []
    for backend in sorted({r["backend"] for r in rows}):
        for prec in ("int8", "fp16", "bf16"):
            common = sorted(b for (be, p, b) in by if be == backend and p == prec and (backend, "fp32", b) in by)
            if not common:
                continue
            b = 32 if 32 in common else common[-1]
            ratio = by[(backend, prec, b)]["throughput_ips"] / by[(backend, "fp32", b)]["throughput_ips"]
            out.append(f"{prec} is {ratio:.2g}× fp32 at batch {b} on {where} ({backend}: "
                       f"{_ips(by[(backend, prec, b)]['throughput_ips'])} vs "
                       f"{_ips(by[(backend, 'fp32', b)]['throughput_ips'])} img/s)")
    return out


def noise_warnings(report: dict[str, Any]) -> list[str]:
    """Why these timings may not be trusted: a loaded machine (load average vs cores), repeats
    that disagree, heavy tails (p99/p50), and int8 rows slower than fp32 (said, not hidden)."""
    env = report.get("environment") or {}
    cores = env.get("cpu_affinity") or env.get("cpu_logical_cores") or 1
    out = []
    loads = [x[0] for x in (env.get("loadavg_start"), env.get("loadavg_end")) if x]
    if loads and max(loads) / cores > LOAD_PER_CORE:
        out.append(f"the machine was busy (1-min load {max(loads):.2g} on {cores} core(s)): other work shared "
                   "the cores, so these timings are unreliable; rerun on an idle machine")
    st = report.get("stability")
    if st and not st.get("all_stable"):
        bad = [c for c in st.get("rows", []) if not c.get("stable")]
        out.append(f"{len(bad)} row(s) changed by more than {st['tolerance']:.0%} between repeats: timings are noisy")
    rows = [r for r in report.get("rows", []) if not r.get("skipped_reason") and r.get("latency_ms")]
    tails = [r for r in rows if r["latency_ms"].get("p50") and r["latency_ms"]["p99"] / r["latency_ms"]["p50"] > TAIL_RATIO]
    if tails:
        worst = max(tails, key=lambda r: r["latency_ms"]["p99"] / r["latency_ms"]["p50"])
        out.append(f"{len(tails)} row(s) have p99 > {TAIL_RATIO:g}× p50 (worst: {worst['backend']} {worst['precision']} "
                   f"batch {worst['batch']}, {worst['latency_ms']['p99'] / worst['latency_ms']['p50']:.2g}×): "
                   "interruptions, not the model")
    by = {(r["backend"], r["precision"], r["batch"]): r for r in rows}
    slow = [k for k in by if k[1] == "int8" and (k[0], "fp32", k[2]) in by
            and by[k]["throughput_ips"] < by[(k[0], "fp32", k[2])]["throughput_ips"]]
    if slow:
        dot = str(env.get("int8_dot_product") or "")
        why = (f"this CPU's int8 instructions are {dot}: no VNNI, so int8 gains little"
               if "no VNNI" in dot else
               "on a loaded machine or a tiny model, quantize/dequantize overhead can outweigh int8 kernels")
        out.append(f"int8 is slower than fp32 in {len(slow)} row(s) ({', '.join(f'{b} b={n}' for b, _, n in slow[:4])}): {why}")
    return out


def render_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: headlines and warnings, results, kernels, skipped rows, stability,
    the Jetson estimate, the environment, artifacts, inputs and the method."""
    env = report["environment"]
    lines = [
        "# edgedistal bench report",
        "",
        f"Generated {env.get('time_utc', '')} by `{report.get('tool', 'edgedistal bench')}` "
        f"(schema v{report['schema_version']}, profile `{report['config'].get('profile')}`).",
        "",
    ]
    if report.get("notes"):
        lines += [*(f"> {n}" for n in report["notes"]), ""]
    lines += [*(f"**{h}.**" for h in headlines(report)), ""] if headlines(report) else []
    lines += [*(f"> **Warning:** {w}." for w in noise_warnings(report)), ""] if noise_warnings(report) else []
    lines += _result_lines(report)
    lines += _kernel_lines(report)
    lines += _skipped_lines(report)
    lines += _stability_lines(report)
    lines += _jetson_lines(report)
    lines += _environment_lines(report)
    lines += _artifact_lines(report)
    inp = report.get("inputs") or {}
    if inp:
        lines += ["", "## Inputs", "",
                  f"- manifest `{inp.get('manifest')}` split `{inp.get('split')}`: {inp.get('n_images')} images "
                  f"({inp.get('n_fake')} fake, {inp.get('n_real')} real)",
                  f"- checkpoint `{inp.get('checkpoint')}`, ONNX `{inp.get('onnx_dir')}`, engines `{inp.get('engine_dir')}`"]
    lines += ["", "## Method", "", *(f"- {m}" for m in report["method"])]
    return "\n".join(lines) + "\n"


def _result_lines(report: dict[str, Any]) -> list[str]:
    lines = ["## Results", "", "| backend | device | precision | batch | p50 ms | p90 ms | p95 ms | p99 ms | mean ms "
             "| compute p50 ms | img/s | peak host MiB | peak dev MiB | AUC | bal. acc | max abs dp vs fp32 |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in report["rows"]:
        if r.get("skipped_reason"):
            continue
        lat, comp, acc = r["latency_ms"], r.get("compute_ms"), r.get("accuracy") or {}
        lines.append(
            f"| {r['backend']} | {r['device']} | {r['precision']} | {r['batch']} | {_f(lat['p50'])} "
            f"| {_f(lat['p90'])} | {_f(lat['p95'])} | {_f(lat['p99'])} | {_f(lat['mean'])} "
            f"| {_f(comp['p50'] if comp else None)} | {_f(r['throughput_ips'], 1)} "
            f"| {_f(r['peak_host_mb'], 0)} | {_f(r['peak_device_mb'], 0)} | {_f(acc.get('auc'), 4)} "
            f"| {_f(acc.get('balanced_acc'), 4)} | {_g(acc.get('max_abs_dp_vs_fp32'))} |"
        )
    return lines


def _skipped_lines(report: dict[str, Any]) -> list[str]:
    """One row per (backend, precision, reason), listing the batches it skipped."""
    skipped = [r for r in report["rows"] if r.get("skipped_reason")]
    if not skipped:
        return []
    lines = ["", "### Skipped", "", "| backend | precision | batch | reason |", "|---|---|---:|---|"]
    seen = set()
    for r in skipped:
        key = (r["backend"], r["precision"], r["skipped_reason"])
        batches = [s["batch"] for s in skipped if (s["backend"], s["precision"], s["skipped_reason"]) == key]
        if key in seen:
            continue
        seen.add(key)
        lines.append(f"| {r['backend']} | {r['precision']} | {','.join(map(str, batches))} | {r['skipped_reason']} |")
    return lines


def _stability_lines(report: dict[str, Any]) -> list[str]:
    st = report.get("stability")
    if not st:
        return []
    env = report["environment"]
    verdict = "STABLE" if st["all_stable"] else "NOT STABLE"
    lines = ["", "## Stability between passes", "",
             f"{verdict} within {st['tolerance']:.0%} — {st['method']}.", "",
             "| backend | precision | batch | p50 pass 1 | p50 later | Δp50 | p99 pass 1 | p99 later | Δp99 | stable |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for c in st["rows"]:
        i = c["pass"]
        lines.append(
            f"| {c['backend']} | {c['precision']} | {c['batch']} | {_f(c['p50_pass1'])} | {_f(c[f'p50_pass{i}'])} "
            f"| {c['p50_rel_change']:.1%} | {_f(c['p99_pass1'])} | {_f(c[f'p99_pass{i}'])} "
            f"| {c['p99_rel_change']:.1%} | {'yes' if c['stable'] else 'NO'} |"
        )
    if st.get("passes"):
        lines += ["", "Load during each pass (1-min load average; the machine has "
                  f"{env.get('cpu_logical_cores')} logical cores): "
                  + "; ".join(f"pass {q['pass']}: {_f(q['loadavg1_start'])} → {_f(q['loadavg1_end'])} "
                              f"over {q['wall_s']:g} s" for q in st["passes"])]
    return lines


def _jetson_lines(report: dict[str, Any]) -> list[str]:
    est = report.get("jetson_estimate")
    if not est:
        return []
    lines = ["", "## Jetson ESTIMATE (not measured)", "", f"**{est['label']}**", ""]
    if "rows" not in est:
        return [*lines, f"Not computed: {est.get('reason')}"]
    lines += [f"Model: {est.get('model', '?')}, {est['flops_per_image'] / 1e9:.3f} GFLOPs/image "
              f"(torch FlopCounterMode), batch 1, assumed utilisation {est['assumed_utilisation']:.0%}.", "",
              "| device | precision | dense peak (T(FL)OPS) | ESTIMATED latency ms | ESTIMATED img/s |",
              "|---|---|---:|---:|---:|"]
    for r in est["rows"]:
        lines.append(f"| {r['device']} | {r['precision']} | {r['peak_dense_tops']:g} "
                     f"| {r['estimated_latency_ms']:.3f} (ESTIMATE) | {r['estimated_throughput_ips']:.0f} (ESTIMATE) |")
    lines += ["", f"Caveat: {est['caveat']}.", "", "Peak sources:"]
    return lines + [f"- {name}: {p['headline']} — {p['source']}" for name, p in est["peaks"].items()]


def _environment_lines(report: dict[str, Any]) -> list[str]:
    env = report["environment"]
    v = env.get("versions", {})
    lines = ["", "## Environment", "",
             f"- CPU flags: {', '.join(env.get('cpu_flags') or []) or 'not recorded'} "
             f"(int8 dot product: {env.get('int8_dot_product', 'not recorded')})",
             f"- CPU: {env.get('cpu_model')} ({env.get('cpu_logical_cores')} logical cores, "
             f"{env.get('cpu_affinity')} usable; torch threads {env.get('torch_threads')}; "
             f"--threads cap {env.get('threads_cap') or 'none'})",
             f"- Load average at start/end: {_load(env.get('loadavg_start'))} / {_load(env.get('loadavg_end'))}",
             f"- Host allocator: {env.get('allocator', 'unchanged')}"]
    gpu = env.get("gpu")
    smi = env.get("nvidia_smi") or {}
    lines.append(f"- GPU: {gpu['name'] + ' (sm ' + gpu['capability'] + ', ' + str(gpu['memory_gb']) + ' GB)' if gpu else 'none'}"
                 + (f"; driver {smi.get('driver')}, CUDA driver API {smi.get('cuda_driver_api')}" if smi else ""))
    lines.append(f"- torch {v.get('torch')} (CUDA {v.get('torch_cuda')}), onnxruntime {v.get('onnxruntime') or v.get('onnxruntime-gpu')} "
                 f"(providers: {', '.join(env.get('ort_providers') or [])}), TensorRT {v.get('tensorrt') or 'absent'}, "
                 f"timm {v.get('timm')}, numpy {v.get('numpy')}")
    lines.append(f"- Python {env.get('python')} on {env.get('platform')}")
    if env.get("jetson"):
        j = env["jetson"]
        lines.append(f"- Jetson: {j.get('model')}; L4T {j.get('l4t')}; JetPack {j.get('jetpack')}; power mode {j.get('power_mode')}")
    bn = report.get("backend_notes") or {}
    if bn.get("workspace_mb"):
        lines.append(f"- Workspace cap {bn['workspace_mb']} MiB: "
                     + (f"applied to {bn['workspace_applied']}" if bn.get("workspace_applied") else "NOT applied")
                     + (f"; {bn['workspace_tensorrt']}" if bn.get("workspace_tensorrt") else "")
                     + "; torch and the CPU/CUDA EPs have no workspace pool")
    return lines


def _kernel_lines(report: dict[str, Any]) -> list[str]:
    """Integer vs float nodes of the graph ORT runs, once per backend × precision."""
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for r in report["rows"]:
        k = r.get("kernels")
        if k and "integer_nodes" in k:
            seen.setdefault((r["backend"], r["precision"]), k)
    if not seen:
        return []
    lines = ["", "### Kernels ONNX Runtime runs (optimised graph)", "",
             "| backend | precision | integer nodes | float compute nodes | Q/DQ left | other | main ops |",
             "|---|---|---:|---:|---:|---:|---|"]
    for (b, p), k in seen.items():
        top = sorted(k["by_op"].items(), key=lambda kv: -kv[1])[:6]
        lines.append(f"| {b} | {p} | {k['integer_nodes']} | {k['float_compute_nodes']} | {k['qdq_nodes']} "
                     f"| {k['other_nodes']} | {', '.join(f'{op} {n}' for op, n in top)} |")
    return lines


def _artifact_lines(report: dict[str, Any]) -> list[str]:
    """Which file served each precision, its int8 target and calibration source."""
    arts = report.get("artifacts") or {}
    if not arts:
        return []
    lines = ["", "## Artifacts", "", "| precision | file | int8 target | calibrated on |", "|---|---|---|---|"]
    for p, a in arts.items():
        cal = (a.get("calibration") or {}).get("source") if isinstance(a.get("calibration"), dict) else a.get("calibration")
        lines.append(f"| {p} | `{a.get('engine') or a.get('onnx')}` | {a.get('int8_target') or '–'} | {cal or '–'} |")
    return lines


def _g(x: float | None) -> str:
    """Small drifts (1e-5) must stay visible, so 3 significant digits rather than fixed decimals."""
    return "–" if x is None else f"{x:.3g}"


def _load(x: list[float] | None) -> str:
    return " ".join(f"{v:.2f}" for v in x) if x else "–"


# -- plots ---------------------------------------------------------------------------------------
def plot_latency(report: dict[str, Any], path: Path) -> Path | None:
    """p50 latency vs batch (error bar to p99), one line per backend × precision."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, list[tuple[int, float, float]]] = {}
    for r in report["rows"]:
        if r.get("latency_ms"):
            series.setdefault(f"{r['backend']} {r['precision']}", []).append(
                (r["batch"], r["latency_ms"]["p50"], r["latency_ms"]["p99"]))
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, pts in sorted(series.items()):
        pts.sort()
        b, p50, p99 = zip(*pts, strict=True)
        ax.errorbar(b, p50, yerr=[[0] * len(b), [q - m for q, m in zip(p99, p50, strict=True)]],
                    marker="o", capsize=3, label=label)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size")
    ax.set_ylabel("latency ms (p50, bar to p99)")
    ax.set_title("End-to-end latency vs batch")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    try:
        return save_figure(fig, path)
    finally:
        plt.close(fig)


def plot_accuracy(report: dict[str, Any], path: Path) -> Path | None:
    """AUC and balanced accuracy per backend × precision (bars)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seen: dict[str, dict[str, Any]] = {}
    for r in report["rows"]:
        if r.get("accuracy"):
            dp = r["accuracy"].get("max_abs_dp_vs_fp32")
            tag = f"\nmax|Δp| {dp:.3g}" if dp is not None else ""
            seen.setdefault(f"{r['backend']}\n{r['precision']}{tag}", r["accuracy"])
    if not seen:
        return None
    labels = list(seen)
    auc = [seen[k]["auc"] or 0.0 for k in labels]
    bacc = [seen[k]["balanced_acc"] or 0.0 for k in labels]
    x = range(len(labels))
    fig, ax = plt.subplots(figsize=(max(4, 1.3 * len(labels)), 3.5))
    ax.bar([i - 0.2 for i in x], auc, 0.4, label="AUC")
    ax.bar([i + 0.2 for i in x], bacc, 0.4, label="balanced acc")
    ax.set_xticks(list(x), labels, fontsize=8)
    ax.set_ylim(0, 1)
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_title("Accuracy by backend × precision")
    ax.legend(fontsize=8)
    try:
        return save_figure(fig, path)
    finally:
        plt.close(fig)


def write_report(report: dict[str, Any], out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Validate, then write bench.json, bench.md and the plots atomically under ``out_dir``."""
    validate_report(report)
    out = Path(out_dir)
    files = {"json": write_json_atomic(out / "bench.json", report),
             "markdown": write_text_atomic(out / "bench.md", render_markdown(report))}
    from edgedistal.bench.html import plot_percentiles, render_html

    for name, fn in (("latency_png", plot_latency), ("percentiles_png", plot_percentiles),
                     ("accuracy_png", plot_accuracy)):
        p = fn(report, out / f"{name.removesuffix('_png')}.png")
        if p:
            files[name] = p
    files["html"] = write_text_atomic(out / "bench.html", render_html(report, files, headlines=headlines(report),
                                                                      warnings=noise_warnings(report)))
    return files


def load_report(path: str | os.PathLike[str]) -> dict[str, Any]:
    report = read_json(path)
    validate_report(report)
    return report
