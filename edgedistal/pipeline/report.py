"""Render a distillation / evaluation run as Markdown + one self-contained HTML page.

The report is built once as a list of blocks (headings, paragraphs, tables, figures) and
written twice: Markdown that links ``figures/*.png`` and HTML with the same figures inlined as
base64, so the page can be mailed or attached to a ticket as one file. The first line is the
conclusion a person reads at a glance; everything below is the evidence for it.

A run folder may be an evaluation output (``summary.json`` + ``cells/``), a distillation output
(``distilled.parquet``, ``rounds.parquet``, ``pool_scores.parquet``, ``embeddings.npy``), or a
folder holding both as ``eval/`` and ``distill/`` (what ``benchmarks/distill_dfdc.py`` writes).
Missing pieces skip their section instead of failing.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from edgedistal.data.distilled import (
    ROUNDS_FILE,
    is_distill_dir,
    read_embeddings,
    read_pool_scores,
    read_rounds,
    read_summary,
)
from edgedistal.errors import EdgedistalError
from edgedistal.utils.io import read_json, write_text_atomic


@dataclass
class RunDirs:
    root: Path
    eval_dir: Path | None = None
    distill_dir: Path | None = None


@dataclass
class Report:
    title: str
    blocks: list[tuple[str, Any]] = field(default_factory=list)
    figures: dict[str, bytes] = field(default_factory=dict)  # name → PNG bytes

    def h(self, text: str, level: int = 2) -> None:
        self.blocks.append(("h", (level, text)))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def table(self, df: pd.DataFrame) -> None:
        self.blocks.append(("table", df))

    def fig(self, name: str, png: bytes | None, caption: str) -> None:
        if png:
            self.figures[name] = png
            self.blocks.append(("fig", (name, caption)))


# -- locating the pieces ----------------------------------------------------------------------
def find_run(run_dir: str | os.PathLike[str]) -> RunDirs:
    root = Path(run_dir)
    if not root.is_dir():
        raise EdgedistalError(f"{root}: run folder not found", "pass the --out folder of evaluate or distill")
    dirs = RunDirs(root)
    for cand in (root, root / "eval"):
        if (cand / "cells").is_dir() or (cand / "summary.json").exists():
            dirs.eval_dir = cand
            break
    # folders next to the run first: the recorded absolute path may name another machine's /tmp
    cands = [root, root / "distill"]
    if dirs.eval_dir is not None:
        cands += [dirs.eval_dir / "distill"]
        cfg = dirs.eval_dir / "eval_config.json"
        if cfg.exists() and read_json(cfg).get("distilled_dir"):
            cands.append(Path(read_json(cfg)["distilled_dir"]))
    for cand in cands:
        if is_distill_dir(cand):
            dirs.distill_dir = cand
            break
    if dirs.eval_dir is None and dirs.distill_dir is None:
        raise EdgedistalError(
            f"{root}: neither an evaluation (summary.json, cells/) nor a distillation (distilled.parquet)",
            "pass the --out folder of `edgedistal evaluate --distilled` or `edgedistal distill`",
        )
    return dirs


# -- figures ----------------------------------------------------------------------------------
def _png(fig) -> bytes:
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _start_of(train: dict) -> str:
    """Where every arm's weights start: the embedder (``--init``), hub weights, or random."""
    if train.get("init"):
        return f"every arm initialised from the embedder {Path(str(train['init'])).name} (`--init`)"
    return "from pretrained weights" if train.get("pretrained") else "from scratch"


def _paired_band(summary: dict, method: str, metric: str) -> tuple[list, list, list]:
    """Budgets and the strongest baseline's mean + the paired 95 % interval of the method's
    difference: a band wholly above that baseline's curve is a win, one that straddles it a tie."""
    xs, lo, hi = [], [], []
    for r in (summary.get("comparisons") or {}).get(method, {}).get("points", []):
        if "baseline_mean" in r and math.isfinite(r.get("ci_lo", math.nan)):
            xs.append(100 * r["budget"])
            lo.append(r["baseline_mean"] + r["ci_lo"])  # the method's paired interval, anchored on
            hi.append(r["baseline_mean"] + r["ci_hi"])  # the strongest baseline: above it = a win
    return xs, lo, hi


def fig_budget_curve(summary: dict) -> bytes | None:
    """Test AUC against budget, readable at a glance: the recommended method highlighted with
    its paired 95 % band (where the strongest baseline would have to lie for a tie), other
    methods thin, baselines dashed grey-ish, the full pool as a band; the legend sits outside the
    data and the y-axis spans from chance-ish to the full pool, not zoomed to seed noise."""
    from edgedistal.pipeline.compare import best_method

    metric = summary.get("metric", "frame_auc")
    curves = summary.get("curves") or {}
    if not curves:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8.2, 4.6))
    best = best_method(summary) if summary.get("comparisons") else None
    fixed = {"random": ("tab:orange", "s", "--"), "balanced": ("tab:red", "D", "--"),
             "rs2": ("tab:brown", "^", ":")}
    others = iter(["tab:purple", "tab:cyan", "tab:olive", "tab:pink", "tab:gray"])
    ys: list[float] = []
    for arm, c in curves.items():
        pts = [p for p in c["points"] if p.get("n_seeds") and math.isfinite(p.get(f"{metric}_mean", math.nan))]
        if not pts:
            continue
        x = [100 * p["budget"] for p in pts]
        y = [p[f"{metric}_mean"] for p in pts]
        ys += y
        if arm == best:
            color, marker, ls, lw, z = "tab:blue", "o", "-", 3.0, 5
        elif arm in fixed:
            (color, marker, ls), lw, z = fixed[arm], 1.3, 3
        elif arm.startswith("stratified"):
            color, marker, ls, lw, z = "tab:gray", "v", "--", 1.0, 2
        else:
            color, marker, ls, lw, z = next(others, "black"), "o", "-", 1.3, 4
        capped = sum(p.get("capped_improving", 0) for p in pts)
        label = arm + (" ★ recommended" if arm == best else "")
        if math.isfinite(c.get("aubc", math.nan)):
            label += f" (AUBC {c['aubc']:.3f})"
        if capped:
            label += f" [{capped} capped_improving]"
        ax.plot(x, y, color=color, marker=marker, ls=ls, lw=lw, zorder=z, label=label)
    if best:
        bx, blo, bhi = _paired_band(summary, best, metric)
        if bx:
            ax.fill_between(bx, blo, bhi, color="tab:blue", alpha=0.15, zorder=1,
                            label=f"{best}: paired 95 % interval (vs strongest baseline)")
    full = summary.get("full", {})
    fm, fs = full.get(f"{metric}_mean", math.nan), full.get(f"{metric}_std", 0.0)
    fs = fs if fs is not None and math.isfinite(fs) else 0.0
    if math.isfinite(fm):
        conv = full.get("all_converged")
        ax.axhline(fm, color="tab:green", ls="-.", label=f"full pool {fm:.3f}"
                   + ("" if conv is not False else " (capped_improving)"))
        ax.axhspan(fm - fs, fm + fs, color="tab:green", alpha=0.10)
        ys.append(fm)
    ax.axhline(0.5, color="gray", ls=":", lw=1, label="chance (0.5)")
    if ys:  # not zoomed to noise: at least 0.15 AUC of range, down to chance when close
        top = max(ys) + 0.02
        bottom = min(min(ys) - 0.03, top - 0.15)
        ax.set_ylim(max(0.0, bottom), min(1.0, top))
    ax.set_xscale("log")
    xt = sorted({100 * b for b in summary.get("budgets", [])})
    ax.set_xticks(xt, [f"{v:g}%" for v in xt])
    ax.minorticks_off()
    ax.set_xlabel("budget (% of the train pool, log scale)")
    ax.set_ylabel("test AUC (frame)" if metric == "frame_auc" else metric)
    screen = " — SCREENING (logistic head on frozen features)" if summary.get("protocol") == "screen" else ""
    ax.set_title(f"Test AUC vs budget (mean over paired seeds){screen}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return _png(fig)


def fig_composition(rounds: pd.DataFrame) -> bytes | None:
    """Per-round picks: real/fake (or manipulation methods) stacked, groups covered on a twin axis."""
    if rounds is None or rounds.empty or "round" not in rounds:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    r = rounds["round"].to_numpy()
    kinds: dict[str, np.ndarray] = {}
    if "methods" in rounds:
        parsed = [json.loads(m) if isinstance(m, str) and m else {} for m in rounds["methods"]]
        names = sorted({k for d in parsed for k in d})
        if len(names) > 2 or (names and set(names) - {"real", "fake"}):
            kinds = {k: np.array([d.get(k, 0) for d in parsed]) for k in names}
    if not kinds:
        kinds = {"real": rounds.get("n_real", pd.Series(0, index=rounds.index)).to_numpy(),
                 "fake": rounds.get("n_fake", pd.Series(0, index=rounds.index)).to_numpy()}
    bottom = np.zeros(len(r))
    for k, v in kinds.items():
        ax.bar(r, v, bottom=bottom, label=k, color={"real": "tab:green", "fake": "tab:red"}.get(k))
        bottom += v
    ax.set_xlabel("round (0 = seed set)")
    ax.set_ylabel("samples picked")
    ax.legend(fontsize=8, loc="upper left")
    if "groups_covered" in rounds:
        ax2 = ax.twinx()
        ax2.plot(r, rounds["groups_covered"], color="black", marker="o", label="groups covered")
        ax2.set_ylabel("identity groups covered (cumulative)")
        ax2.legend(fontsize=8, loc="upper right")
    ax.set_title("Composition of the picks per round")
    return _png(fig)


def fig_scores(pool: pd.DataFrame) -> bytes | None:
    """Histograms of the last pool scoring: fake probability and uncertainty, picked vs not."""
    if pool is None or pool.empty or "prob" not in pool:
        return None
    plt = _plt()
    picked = (pool["rank"] >= 0).to_numpy() if "rank" in pool else np.zeros(len(pool), bool)
    unc = next((c for c in ("entropy", "margin", "least_confidence") if c in pool), None)
    # an embedder's scores carry no probability (all NaN): nothing to draw for that column
    cols = [c for c in ["prob"] + ([unc] if unc else []) if np.isfinite(pool[c].to_numpy(dtype=float)).any()]
    if not cols:
        return None
    fig, axes = plt.subplots(1, len(cols), figsize=(4.2 * len(cols), 3.4))
    axes = np.atleast_1d(axes)
    for ax, col in zip(axes, cols, strict=True):
        v = pool[col].to_numpy(dtype=float)
        bins = np.linspace(np.nanmin(v), np.nanmax(v) + 1e-9, 30)
        ax.hist(v[~picked], bins=bins, density=True, alpha=0.55, label=f"not picked ({(~picked).sum()})")
        ax.hist(v[picked], bins=bins, density=True, alpha=0.55, label=f"picked ({picked.sum()})")
        ax.set_xlabel("fake probability" if col == "prob" else col.replace("_", " "))
        ax.set_ylabel("density")
        ax.legend(fontsize=8)
    fig.suptitle("Last scoring of the pool: picked vs not picked")
    return _png(fig)


def embedding_2d(emb: np.ndarray, seed: int = 0) -> tuple[np.ndarray, str]:
    """UMAP when installed, PCA otherwise; returns (coords [N,2], method name)."""
    try:
        import umap  # type: ignore[import-not-found]

        return umap.UMAP(n_components=2, random_state=seed).fit_transform(emb), "UMAP"
    except ImportError:
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=seed).fit_transform(emb), "PCA"


def fig_embeddings(emb: np.ndarray | None, pool: pd.DataFrame | None, max_points: int = 6000) -> bytes | None:
    """2-D map of pool embeddings, real/fake coloured, picks outlined."""
    if emb is None or pool is None or len(emb) != len(pool) or len(emb) < 3:
        return None
    if np.asarray(emb).ndim != 2 or np.asarray(emb).shape[1] < 2:  # a label-only run embeds nothing
        return None
    plt = _plt()
    rng = np.random.default_rng(0)
    idx = np.sort(rng.choice(len(emb), size=min(max_points, len(emb)), replace=False))
    xy, how = embedding_2d(np.asarray(emb)[idx])
    lab = pool["label"].to_numpy()[idx]
    picked = (pool["rank"].to_numpy()[idx] >= 0) if "rank" in pool else np.zeros(len(idx), bool)
    fig, ax = plt.subplots(figsize=(5.6, 5.0))
    for val, name, color in ((0, "real", "tab:green"), (1, "fake", "tab:red")):
        m = (lab == val) & ~picked
        ax.scatter(xy[m, 0], xy[m, 1], s=4, c=color, alpha=0.25, label=f"{name} (pool)")
    for val, name, color in ((0, "real", "tab:green"), (1, "fake", "tab:red")):
        m = (lab == val) & picked
        ax.scatter(xy[m, 0], xy[m, 1], s=14, facecolors=color, edgecolors="black", linewidths=0.5,
                   label=f"{name} picked")
    ax.set_title(f"Pool embeddings ({how}, {len(idx)} of {len(emb)} points)")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=7, markerscale=1.5)
    return _png(fig)


def fig_compute(summary: dict) -> bytes | None:
    """Mean training wall time and samples seen per arm and budget, beside the full pool."""
    curves = summary.get("curves") or {}
    full = summary.get("full") or {}
    if not curves:
        return None
    names, wall, seen, colors = [], [], [], []
    for arm, c in curves.items():
        for p in c["points"]:
            if p.get("n_seeds"):
                names.append(f"{arm} {100 * p['budget']:.0f}%")
                wall.append(p.get("wall_s", math.nan))
                seen.append(p.get("samples_seen", math.nan))
                colors.append("tab:blue" if c.get("kind") == "distilled" else "tab:gray")
    names.append("full pool")
    wall.append(full.get("wall_s", math.nan))
    seen.append(full.get("samples_seen", math.nan))
    colors.append("tab:green")
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10.0, 3.8))
    for ax, vals, label in ((axes[0], wall, "training wall time (s, mean over seeds)"),
                            (axes[1], seen, "training samples seen (mean)")):
        ax.bar(range(len(names)), vals, color=colors)
        ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=6)
        ax.set_ylabel(label, fontsize=8)
    fig.suptitle(f"Compute per trained model (protocol: {summary.get('protocol', '?')}; blue: methods, "
                 "grey: baselines, green: full pool)", fontsize=9)
    fig.tight_layout()
    return _png(fig)


# -- building ---------------------------------------------------------------------------------
def _known(v: Any) -> Any:
    return "?" if v is None else v


def _fmt(v: Any, nd: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return "–" if not math.isfinite(v) else f"{v:.{nd}f}"
    return str(v)


def _pm(mean: Any, std: Any) -> str:
    if mean is None or not math.isfinite(mean):
        return "–"
    return f"{mean:.3f} ± {std:.3f}" if std is not None and math.isfinite(std) else f"{mean:.3f} (1 seed, no spread)"


def results_table(summary: dict) -> pd.DataFrame:
    """One row per (budget, arm): AUC mean ± std, size, label mix, compute share, gain kept."""
    metric = summary.get("metric", "frame_auc")
    rows = []
    for i, b in enumerate(summary.get("budgets", [])):
        for arm, c in summary.get("curves", {}).items():
            p = c["points"][i]
            if not p.get("n_seeds"):
                continue
            n = p.get("n_train", math.nan)
            real = p.get("n_real", math.nan)
            total = (p.get("n_real", 0) or 0) + (p.get("n_fake", 0) or 0)
            rows.append({
                "budget": f"{100 * b:.0f}%",
                "arm": arm,
                "kind": c.get("kind", ""),
                "test AUC": _pm(p[f"{metric}_mean"], p[f"{metric}_std"]),
                "seeds": p["n_seeds"],
                "real share": _fmt(real / total if total else math.nan, 2),
                "groups": _fmt(p.get("n_groups"), 0),
                "train rows": _fmt(n, 0),
                "samples seen / full": _fmt(p.get("samples_seen_vs_full"), 2),
                "time / full": _fmt(p.get("wall_s_vs_full"), 2),
                "capped_improving": f"{p.get('capped_improving', 0)}/{p['n_seeds']}",
                "gain kept": _fmt(p.get("gain_kept"), 2),
                "video AUC": _fmt(p.get("video_auc_mean")),
                "EER": _fmt(p.get("frame_eer_mean")),
            })
    return pd.DataFrame(rows)


def _ci(lo: Any, hi: Any) -> str:
    return f"[{lo:+.3f}, {hi:+.3f}]" if lo is not None and math.isfinite(lo) and math.isfinite(hi) else "–"


def _need(n: Any, have: Any) -> str:
    if n is None or (isinstance(n, float) and not math.isfinite(n)):
        return "–"
    return f">{n - 1}" if n > 10_000 else str(int(n))


def _subsets_vary(methods: dict) -> str:
    """Whether each seed trains on its own distillation (a ``DIR_{seed}`` method) or one subset."""
    per_seed = [m for m, d in methods.items() if "{seed}" in str(d)]
    if not per_seed:
        return "distilled subsets fixed"
    if len(per_seed) == len(methods):
        return "each seed trains on its own distillation of every method"
    return f"each seed trains on its own distillation of {', '.join(per_seed)}, the other subsets fixed"


def comparison_table(summary: dict) -> pd.DataFrame:
    """Per method and budget: the strongest baseline, the paired difference with its 95 %
    interval and verdict, the 2-std rule beside it, the seeds a difference this size needs, RS2."""
    rows = []
    for m, c in (summary.get("comparisons") or {}).items():
        for r in c["points"]:
            if "outcome" not in r:
                continue
            rs2 = (r.get("vs") or {}).get("rs2")
            capped = r.get("capped_improving", 0) + r.get("baseline_capped_improving", 0)
            rows.append({
                "method": m, "budget": f"{100 * r['budget']:.0f}%", "method AUC": _pm(r["mean"], r["std"]),
                "strongest baseline": r["baseline"], "baseline AUC": _pm(r["baseline_mean"], r["baseline_std"]),
                "paired diff": f"{r['diff']:+.3f}", "95 % CI": _ci(r.get("ci_lo"), r.get("ci_hi")),
                "seeds": r.get("paired_n", r["n_seeds"]), "verdict": r["outcome"],
                "2-std rule": r.get("outcome_2std", "–"),
                "seeds × test groups": (f"{_ci(r['boot_lo'], r['boot_hi'])} {r['boot_verdict']}"
                                        if "boot_lo" in r else "–"),
                "seeds for 80 % power": _need(r.get("seeds_needed"), 0),
                "vs RS2": (f"{rs2['paired_mean']:+.3f} {rs2['paired_verdict']}" if rs2 and
                           math.isfinite(rs2.get("paired_mean", math.nan)) else "–"),
                "capped_improving": str(capped) if capped else "",
            })
        if "aubc_outcome" in c:
            rows.append({
                "method": m, "budget": "AUBC", "method AUC": _pm(c["aubc"], c["aubc_std"]),
                "strongest baseline": c["aubc_baseline"],
                "baseline AUC": _pm(c["aubc_baseline_value"], c.get("aubc_baseline_std")),
                "paired diff": f"{c.get('aubc_diff', c['aubc'] - c['aubc_baseline_value']):+.3f}",
                "95 % CI": _ci(c.get("aubc_ci_lo"), c.get("aubc_ci_hi")), "seeds": c.get("aubc_paired_n", "–"),
                "verdict": c["aubc_outcome"], "2-std rule": c.get("aubc_outcome_2std", "–"),
                "seeds × test groups": "–", "seeds for 80 % power": _need(c.get("aubc_seeds_needed"), 0), "vs RS2": "–", "capped_improving": "",
            })
    return pd.DataFrame(rows)


def protocol_notes(summary: dict, eval_cfg: dict) -> list[str]:
    """How to read the numbers: the tie rule, the protocol, and what the warnings say."""
    from edgedistal.pipeline.compare import TIE_STD

    ev = eval_cfg.get("eval", {}) or {}
    notes = ["Verdicts are paired: at a budget and seed a method and its baselines share the training seed, "
             "the val-carve seed and the init, so the per-seed difference is tested. A method wins or loses "
             "only when the 95 % t-interval of that difference (over seeds) excludes 0; otherwise it is a tie. "
             "'seeds for 80 % power' is how many paired seeds a difference of the observed size would need. "
             f"The '2-std rule' column is the older, conservative rule: a difference within {TIE_STD:g}× the "
             "larger seed standard deviation is a tie. With one seed there is no spread and no verdict. "
             "The t-interval holds the test set fixed; 'seeds × test groups' is a 95 % bootstrap interval "
             "that resamples the paired seeds and the test identities together (a win there would hold "
             "on a fresh draw of test identities; '–' where a cell kept no test scores)."]
    if summary.get("protocol") == "screen":
        notes.insert(0, "SCREENING: a standardised logistic head trained per arm and seed on frozen features. "
                        "It ranks subsets cheaply; claims about detectors come from the fine-tune protocol.")
    if summary.get("protocol") == "converged":
        stop_on = (f"the manifest's val split ({eval_cfg.get('val_size')} rows, the same for every arm; labels "
                   "outside the budget, which counts training labels only)" if ev.get("val_source") == "split"
                   else f"a {ev.get('val_fraction')} by-group val carve of its own rows")
        notes.append(f"Protocol converged: each arm early-stops on {stop_on} (patience {ev.get('patience')} evaluations, best val weights), with a first "
                     f"step cap of {ev.get('max_epochs')} passes over its rows (at least {ev.get('min_steps')} steps"
                     + (f", at most {ev.get('max_steps')}" if ev.get("max_steps") else "")
                     + (f"; the full arm's first cap {ev['full_max_epochs']} passes" if ev.get("full_max_epochs") else "")
                     + "); a model that hits "
                     f"its cap with val AUC still rising by more than {ev.get('converge_tol')} over its last third "
                     f"is retrained with the cap ×{ev.get('grow', 2)} up to {ev.get('ceiling_epochs', '?')} passes"
                     + (" — and with it every arm of its budget and seed, so paired arms train the same caps"
                        if ev.get("escalate", "cell") == "group" else " (each arm on its own val curve)")
                     + ", and flagged capped_improving if it still rises there; each arm keeps the run with the best val "
                     "AUC (a longer retraining can stop lower). No 'gain kept' is printed against a "
                     "capped_improving full arm. RS2 trains on a fresh random subset of the budget's size every "
                     "epoch, drawn from the whole pool, for the samples its budget's random arm saw. The test "
                     "split only scores the final models.")
    elif summary.get("protocol") == "steps":
        notes.append("Protocol steps: the same optimiser steps for every arm, no validation, final weights: "
                     "it answers 'same compute, which data?', and it under-trains the full pool.")
    return notes + list(summary.get("warnings") or [])


def _run_name(root: Path) -> str:
    """The run folder's name (its parent's, for a folder called ``run``)."""
    root = root.resolve()
    return root.parent.name if root.name == "run" else root.name


def build_report(run_dir: str | os.PathLike[str], reuse_dir: str | os.PathLike[str] | None = None,
                 name: str | None = None) -> Report:
    """Collect the blocks (``reuse_dir/figures/embeddings.png`` stands in for gone embeddings);
    ``name`` titles it (default: the run folder's; a benchmark's shared work folder passes its own)."""
    dirs = find_run(run_dir)
    rep = Report(title=f"edgedistal report: {name or _run_name(dirs.root)}")
    summary = read_json(dirs.eval_dir / "summary.json") if dirs.eval_dir and (dirs.eval_dir / "summary.json").exists() else None
    eval_cfg = read_json(dirs.eval_dir / "eval_config.json") if dirs.eval_dir and (dirs.eval_dir / "eval_config.json").exists() else {}
    dsum = read_summary(dirs.distill_dir) if dirs.distill_dir else None
    bench = read_json(dirs.root / "run.json") if (dirs.root / "run.json").exists() else {}

    if summary:
        rep.p(f"**{summary.get('conclusion', '')}**")
    elif dsum is not None:
        rep.p(f"**Distilled {_known(dsum.selected)} of {_known(dsum.pool)} pool samples "
              f"({_known(dsum.groups_covered)}/{_known(dsum.groups_in_pool)} groups); "
              f"final val AUC {_fmt(dsum.final_val_auc)}. No evaluation in this folder.**")
    if bench.get("machine") or bench.get("recipe"):
        rep.p("Machine: " + ", ".join(f"{k} {v}" for k, v in (bench.get("machine") or {}).items()))
        rep.p("Recipe: " + ", ".join(f"{k}={v}" for k, v in (bench.get("recipe") or {}).items()))

    if summary:
        rep.h("Methods vs baselines vs the full pool")
        tr = eval_cfg.get("train", {}) or {}
        ev = eval_cfg.get("eval", {}) or {}
        methods = ", ".join(summary.get("methods") or {}) or "?"
        rep.p(
            f"Protocol **{summary.get('protocol')}**; {tr.get('backbone')} at {tr.get('image_size')} px, batch "
            f"{tr.get('batch_size')}, lr {tr.get('lr')}, augment {tr.get('augment')}, {_start_of(tr)}. Pool {summary.get('pool_size')} samples, "
            f"test {summary.get('test_size')} samples ({eval_cfg.get('test_groups', '?')} held-out groups). "
            f"Methods: {methods}. Baselines: uniform random ({summary.get('random_mode')}), balanced (50/50 "
            "random), stratified (random with a method's label mix, spread over groups). Seeds: "
            f"{'auto (5 at ≤ 5 %, 3 above)' if ev.get('seeds') == 'auto' else ev.get('seeds')}, paired "
            f"({_subsets_vary(summary.get('methods') or {})}; baseline subsets and training seeds vary). "
            f"Models finished: {summary.get('finished_cells')}/{summary.get('planned_cells')}."
        )
        comp = comparison_table(summary)
        if not comp.empty:
            rep.h("Verdict: each method against the strongest baseline", 3)
            rep.table(comp)
        for n in protocol_notes(summary, eval_cfg):
            rep.p(n)
        rep.fig("budget_curve", fig_budget_curve(summary),
                "Test AUC vs budget (mean over paired seeds); the band is the recommended method's paired "
                "95 % interval against the strongest baseline.")
        evaluated = {f"{float(x):.3f}" for x in summary.get("budgets") or []}
        for sheet in sorted((dirs.eval_dir / "figures").glob("picks_b*.png")):
            b = sheet.stem.removeprefix("picks_b")
            if evaluated and b not in evaluated:  # a sheet of another run sharing this --work folder
                continue
            rep.fig(sheet.stem, sheet.read_bytes(),
                    f"What each method picked at {100 * float(b):g} % next to balanced random (seed 0; "
                    "R/F in the corner, subset size after the name).")
        rep.h("Every arm", 3)
        rep.table(results_table(summary))
        full = summary.get("full", {})
        m = summary.get("metric", "frame_auc")
        conv = full.get("all_converged")
        rep.p(f"Full pool: AUC {_pm(full.get(f'{m}_mean'), full.get(f'{m}_std'))} ({full.get('n_seeds')} seeds, "
              f"{_fmt(full.get('steps'), 0)} steps, {_fmt(full.get('epochs'), 1)} passes, "
              f"{_fmt(full.get('wall_s'), 0)} s per model; "
              + ("converged in every seed" if conv else "convergence unknown under this protocol" if conv is None
                 else "NOT converged in every seed") + ").")
        rep.h("Compute", 3)
        rep.p("'samples seen / full' and 'time / full' are per-model shares of the full arm's training "
              "(mean over seeds); a subset is worth using when it keeps the accuracy at a fraction of both.")
        workers = (bench.get("recipe") or {}).get("workers", 1)
        if workers and workers > 1:
            device = str((bench.get("machine") or {}).get("device") or "")
            where = ("one GPU" if device.startswith("cuda") else "the CPU" if device == "cpu"
                     else "one device")  # said as measured: a CPU run is not called a GPU run
            rep.p(f"Wall times were measured with {workers} models training side by side on {where}, "
                  "so they are shares of a busy device, not standalone timings.")
        rep.fig("compute", fig_compute(summary), "Training wall time and samples seen per model.")

    if dirs.distill_dir is not None:
        dd = dirs.distill_dir
        rep.h("What was picked")
        if dsum is not None:
            rep.p(f"Distillation: mode **{dsum.mode}**, strategy {dsum.strategy}, "
                  f"{dsum.selected} of {dsum.pool} pool samples in "
                  f"{len(dsum.targets)} rounds (seed set {dsum.seed_size}, "
                  f"{dsum.seed_strategy}), groups covered {dsum.groups_covered}/"
                  f"{dsum.groups_in_pool}, stop: {dsum.stop_reason}, final val AUC "
                  f"{_fmt(dsum.final_val_auc)}.")
        rounds = read_rounds(dd) if (dd / ROUNDS_FILE).exists() else None
        if rounds is not None and not rounds.empty:
            cols = [c for c in ("round", "strategy", "picked", "labelled", "n_real", "n_fake", "groups_new",
                                "groups_covered", "val_auc", "seconds") if c in rounds]
            rep.table(rounds[cols].round(4))
        rep.fig("composition", fig_composition(rounds), "Real/fake (or method) mix of each round's picks and groups covered.")
        pool = read_pool_scores(dd)
        rep.fig("scores", fig_scores(pool), "Last scoring of the pool: picked vs not picked.")
        emb = read_embeddings(dd)
        png = fig_embeddings(emb, pool)
        old = Path(reuse_dir) / "figures" / "embeddings.png" if reuse_dir else None
        if png is None and old is not None and old.exists():
            png = old.read_bytes()  # embeddings.npy stayed on the run machine; keep its rendering
        rep.fig("embeddings", png, "2-D map of the pool's embeddings, picks outlined.")
    return rep


# -- rendering --------------------------------------------------------------------------------
def _md_table(df: pd.DataFrame) -> str:
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(_fmt(v) if isinstance(v, float) else str(v) for v in row) + " |")
    return "\n".join(lines)


def to_markdown(rep: Report, fig_dir: str = "figures") -> str:
    out = [f"# {rep.title}", ""]
    for kind, val in rep.blocks:
        if kind == "h":
            out += [f"{'#' * val[0]} {val[1]}", ""]
        elif kind == "p":
            out += [val, ""]
        elif kind == "table":
            out += [_md_table(val), ""]
        elif kind == "fig":
            out += [f"![{val[1]}]({fig_dir}/{val[0]}.png)", "", f"*{val[1]}*", ""]
    return "\n".join(out)


def _inline(text: str) -> str:
    """Escape, then turn **bold** into <strong>."""
    parts = html.escape(text).split("**")
    return "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts))


CSS = """body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:13px;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 7px}
th{background:#f3f3f3}img{max-width:100%}figure{margin:1.5em 0}figcaption{color:#555;font-size:13px}
p:first-of-type{font-size:1.15em;background:#eef6ff;padding:.6em;border-left:4px solid #3a7bd5}"""


def to_html(rep: Report) -> str:
    body = [f"<h1>{html.escape(rep.title)}</h1>"]
    for kind, val in rep.blocks:
        if kind == "h":
            body.append(f"<h{val[0]}>{html.escape(val[1])}</h{val[0]}>")
        elif kind == "p":
            body.append(f"<p>{_inline(val)}</p>")
        elif kind == "table":
            body.append(val.to_html(index=False, border=0, na_rep="–", escape=True))
        elif kind == "fig":
            b64 = base64.b64encode(rep.figures[val[0]]).decode()
            body.append(f'<figure><img alt="{html.escape(val[0])}" src="data:image/png;base64,{b64}">'
                        f"<figcaption>{html.escape(val[1])}</figcaption></figure>")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(rep.title)}</title>"
            f"<style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def write_report(run_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str] | None = None,
                 name: str | None = None) -> dict:
    """Build the report of ``run_dir`` (titled ``name``, see :func:`build_report`) and write
    ``report.md``, ``report.html`` and ``figures/``."""
    out = Path(out_dir) if out_dir else Path(run_dir)
    rep = build_report(run_dir, reuse_dir=out, name=name)
    figs = out / "figures"
    figs.mkdir(parents=True, exist_ok=True)
    for name, png in rep.figures.items():
        with open(figs / f"{name}.png.tmp", "wb") as fh:
            fh.write(png)
        os.replace(figs / f"{name}.png.tmp", figs / f"{name}.png")
    md = write_text_atomic(out / "report.md", to_markdown(rep))
    page = write_text_atomic(out / "report.html", to_html(rep))
    first = next((v for k, v in rep.blocks if k == "p"), "")
    return {"markdown": md, "html": page, "figures": sorted(rep.figures), "conclusion": first.strip("*")}
