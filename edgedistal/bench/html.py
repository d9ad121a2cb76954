"""``bench.html``: the bench report as one self-contained page a person reads at a glance.

Beside ``bench.md``, from the same validated ``bench.json``: the latency percentiles and the
accuracy per backend × precision as labelled figures (PNG, embedded as base64, so the file can
be mailed or attached to CI as it is), the int8 kernel counts, artifacts and environment.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgedistal.utils.io import atomic_path


def save_figure(fig: Any, path: Path) -> Path:
    """Write a matplotlib figure as PNG, atomically (the plots of ``bench.md`` and ``bench.html``)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    return path


def plot_percentiles(report: dict[str, Any], path: Path) -> Path | None:
    """One panel per batch size: p50 / p90 / p99 bars for every backend × precision."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report["rows"] if r.get("latency_ms")]
    if not rows:
        return None
    batches = sorted({r["batch"] for r in rows})
    labels = sorted({f"{r['backend']}\n{r['precision']}" for r in rows})
    fig, axes = plt.subplots(1, len(batches), figsize=(max(4.5, 1.1 * len(labels)) * len(batches), 3.8),
                             squeeze=False)
    for ax, b in zip(axes[0], batches, strict=True):
        lat = {f"{r['backend']}\n{r['precision']}": r["latency_ms"] for r in rows if r["batch"] == b}
        x = range(len(labels))
        for off, q, color in ((-0.27, "p50", "#4c72b0"), (0.0, "p90", "#dd8452"), (0.27, "p99", "#c44e52")):
            vals = [lat[k][q] if k in lat else float("nan") for k in labels]
            bars = ax.bar([i + off for i in x], vals, 0.27, label=q, color=color)
            if q == "p50":
                ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=1)
        ax.set_xticks(list(x), labels, fontsize=8)
        ax.set_yscale("log")  # one slow backend would flatten the others' bars on a linear axis
        ax.set_ylabel("latency per call, ms (host→host, log)")
        ax.set_title(f"batch {b}: latency percentiles (p50 labelled)")
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    try:
        return save_figure(fig, path)
    finally:
        plt.close(fig)


def _img(path: Path | None, alt: str) -> str:
    if path is None or not Path(path).exists():
        return f"<p><em>{html.escape(alt)}: no data.</em></p>"
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"><figcaption>{html.escape(alt)}</figcaption></figure>'


def _num(x: Any, nd: int = 2) -> str:
    if x is None:
        return "–"
    return f"{x:.{nd}f}" if isinstance(x, float) else html.escape(str(x))


def _table(head: list[str], body: list[list[str]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    trs = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in body)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"


def render_html(report: dict[str, Any], figures: dict[str, Path | None], headlines: Sequence[str] = (),
                warnings: Sequence[str] = ()) -> str:
    """The page; ``figures`` maps latency_png / percentiles_png / accuracy_png to files; the
    headlines and noise warnings (computed by bench.report) go first, as in bench.md."""
    env = report["environment"]
    measured = [r for r in report["rows"] if not r.get("skipped_reason")]
    results = _table(
        ["backend", "device", "precision", "batch", "p50 ms", "p90 ms", "p99 ms", "img/s", "AUC",
         "bal. acc", "max |Δp| vs fp32", "integer / float nodes"],
        [[html.escape(r["backend"]), html.escape(r["device"]), html.escape(r["precision"]), str(r["batch"]),
          _num(r["latency_ms"]["p50"]), _num(r["latency_ms"]["p90"]), _num(r["latency_ms"]["p99"]),
          _num(r["throughput_ips"], 1), _num((r.get("accuracy") or {}).get("auc"), 4),
          _num((r.get("accuracy") or {}).get("balanced_acc"), 4),
          _num((r.get("accuracy") or {}).get("max_abs_dp_vs_fp32"), 4),
          (f"{r['kernels']['integer_nodes']} / {r['kernels']['float_compute_nodes']}"
           if r.get("kernels") and "integer_nodes" in r["kernels"] else "–")] for r in measured])
    skipped = _table(["backend", "precision", "batch", "reason"],
                     [[html.escape(r["backend"]), html.escape(r["precision"]), str(r["batch"]),
                       html.escape(r["skipped_reason"])] for r in report["rows"] if r.get("skipped_reason")])
    arts = report.get("artifacts") or {}
    art_tbl = _table(["precision", "file", "int8 target", "calibrated on"],
                     [[html.escape(p), html.escape(str(a.get("engine") or a.get("onnx"))),
                       html.escape(str(a.get("int8_target") or "–")),
                       html.escape(str((a.get("calibration") or {}).get("source") or "–"))] for p, a in arts.items()])
    gpu = env.get("gpu")
    env_lines = [f"CPU: {env.get('cpu_model')} ({env.get('cpu_logical_cores')} logical cores; "
                 f"--threads cap {env.get('threads_cap') or 'none'})",
                 f"CPU flags: {', '.join(env.get('cpu_flags') or []) or 'not recorded'}",
                 f"GPU: {gpu['name'] if gpu else 'none'}",
                 f"Versions: {', '.join(f'{k} {v}' for k, v in (env.get('versions') or {}).items() if v)}",
                 f"Generated {env.get('time_utc', '')}"]
    css = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;color:#222}"
           "table{border-collapse:collapse;font-size:13px;margin:1em 0}td,th{border:1px solid #ccc;"
           "padding:3px 8px;text-align:right}th{background:#f0f0f0}td:first-child,th:first-child{text-align:left}"
           "img{max-width:100%}blockquote.warn{border-left:4px solid #c44e52;background:#fdf0f0;"
           "margin:0.6em 0;padding:0.4em 0.8em}figure{margin:1em 0}figcaption{font-size:12px;color:#555}")
    notes = "".join(f"<p><strong>{html.escape(h)}.</strong></p>" for h in headlines)
    notes += "".join(f'<blockquote class="warn"><strong>Warning:</strong> {html.escape(w)}.</blockquote>'
                     for w in warnings)
    notes += "".join(f"<blockquote>{html.escape(n)}</blockquote>" for n in report.get("notes") or [])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>edgedistal bench report</title><style>{css}</style></head>
<body><h1>edgedistal bench report</h1>{notes}
<p>{len(measured)} rows measured, {len(report['rows']) - len(measured)} skipped. Latency is host→host
per call; percentiles over the recorded samples (see Method).</p>
<h2>Latency percentiles per backend × precision</h2>
{_img(figures.get('percentiles_png'), 'p50 / p90 / p99 latency (ms) per backend × precision, one panel per batch size')}
{_img(figures.get('latency_png'), 'p50 latency (ms) vs batch size, bar to p99, log-log')}
<h2>Accuracy per backend × precision</h2>
{_img(figures.get('accuracy_png'), 'AUC and balanced accuracy per backend × precision (dashed: chance)')}
<h2>All measured rows</h2>{results}
<h2>Skipped</h2>{skipped}
<h2>Artifacts</h2>{art_tbl}
<h2>Environment</h2><ul>{''.join(f'<li>{html.escape(x)}</li>' for x in env_lines)}</ul>
<h2>Method</h2><ul>{''.join(f'<li>{html.escape(m)}</li>' for m in report['method'])}</ul>
</body></html>
"""
