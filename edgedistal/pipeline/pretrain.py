"""`edgedistal pretrain` as a library call: SimCLR on a manifest's train images → ``embedder.pt``
plus a quality report.

Only the *paths* of the train split are read for training (never val/test rows, never a
label), so shuffling the labels cannot change the weights (a test proves it). After training,
the report states label-free health (loss curve, embedding std, effective rank, alignment and
uniformity) and, where the manifest has labels, *diagnostics only* that never feed back into
the weights: frozen linear-probe and kNN val AUC against a random-init network of the same
architecture, kNN and δ-ball label purity (ProbCover's premise), and same-group retrieval
(how strongly the space clusters by identity/source, which coverage methods should know).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from edgedistal.data.manifest import Manifest
from edgedistal.errors import EdgedistalError
from edgedistal.models.embedder import Embedder, build_embedder, save_embedder
from edgedistal.models.pretrain import PretrainConfig, PretrainResult, embed, pretrain, quality
from edgedistal.utils.io import write_json_atomic, write_text_atomic

log = logging.getLogger(__name__)

EMBEDDER_FILE = "embedder.pt"
STATE_FILE = "pretrain_state.pt"
REPORT_JSON = "report.json"
REPORT_MD = "report.md"


def paths_digest(paths: list[str]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


# -- diagnostics (labels read here only, after training) ---------------------------------------
def _auc(y: np.ndarray, s: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s)) if len(np.unique(y)) == 2 else None


def _neighbours(q: np.ndarray, ref: np.ndarray, k: int, same: bool) -> tuple[np.ndarray, np.ndarray]:
    """Indices and cosine distances of the k nearest ``ref`` rows (excluding self when ``same``)."""
    import torch

    qt, rt = torch.from_numpy(np.ascontiguousarray(q, np.float32)), torch.from_numpy(np.ascontiguousarray(ref, np.float32))
    idx, dist = [], []
    for s in range(0, len(qt), 1024):
        d = 1 - qt[s : s + 1024] @ rt.T
        if same:
            d[torch.arange(d.shape[0]), torch.arange(s, s + d.shape[0])] = float("inf")
        v, i = d.topk(min(k, len(rt) - int(same)), largest=False)
        idx.append(i.numpy())
        dist.append(v.numpy())
    return np.concatenate(idx), np.concatenate(dist)


def space_diagnostics(tr_emb: np.ndarray, tr_y: np.ndarray, tr_groups: np.ndarray, va_emb: np.ndarray | None,
                      va_y: np.ndarray | None, k: int = 20, seed: int = 0) -> dict[str, Any]:
    """Linear probe + kNN val AUC, kNN / δ-ball label purity and same-group retrieval of a space."""
    from sklearn.linear_model import LogisticRegression

    out: dict[str, Any] = {}
    if va_emb is not None and va_y is not None and len(va_y) and len(np.unique(tr_y)) == 2:
        clf = LogisticRegression(C=1.0, max_iter=2000, class_weight="balanced", random_state=seed)
        clf.fit(tr_emb, tr_y)
        out["linear_probe_val_auc"] = _auc(va_y, clf.decision_function(va_emb))
        ni, _ = _neighbours(va_emb, tr_emb, k, same=False)
        out["knn_val_auc"] = _auc(va_y, tr_y[ni].mean(1))
    ni, nd = _neighbours(tr_emb, tr_emb, k, same=True)
    out["knn_label_purity"] = float((tr_y[ni] == tr_y[:, None]).mean())
    out["same_group_top5"] = float((tr_groups[ni[:, :5]] == tr_groups[:, None]).mean())
    # δ-ball purity at the radii where a ball holds on average ~k/4 and ~k neighbours
    balls = {}
    for q, name in ((0.25, "delta_small"), (1.0, "delta_large")):
        delta = float(np.quantile(nd[:, max(0, int(round(k * q)) - 1)], 0.5))
        inside = nd <= delta
        agree = (tr_y[ni] == tr_y[:, None]) | ~inside
        pure = agree.all(1)
        balls[name] = {"delta": delta, "mean_ball_size": float(inside.sum(1).mean()),
                       "pure_ball_share": float(pure.mean())}
    out["delta_ball_purity"] = balls
    return out


def diagnostics(model: Embedder, cfg: PretrainConfig, train: Manifest, val: Manifest, train_images: np.ndarray,
                *, max_train: int = 4000, max_val: int = 2000, device: str = "cpu", seed: int = 0) -> dict[str, Any]:
    """The embedder vs a random-init network of the same architecture (labels: diagnostics only)."""
    from edgedistal.data.images import load_images

    rng = np.random.default_rng(seed)
    ti = np.sort(rng.choice(len(train), size=min(max_train, len(train)), replace=False))
    vi = np.sort(rng.choice(len(val), size=min(max_val, len(val)), replace=False)) if len(val) else np.empty(0, int)
    x_tr = np.asarray(train_images[ti])
    x_va = load_images([val.paths[i] for i in vi], cfg.image_size) if len(vi) else None
    y_tr, g_tr = train.labels[ti], train.df["group"].to_numpy(dtype=object)[ti]
    y_va = val.labels[vi] if len(vi) else None
    import torch

    torch.manual_seed(cfg.seed + 1)
    rand = build_embedder(cfg.detector_config()).eval()
    out: dict[str, Any] = {"n_train": int(len(ti)), "n_val": int(len(vi))}
    for name, m in (("embedder", model), ("random_init", rand)):
        e_tr = embed(m, x_tr, device=device)
        e_va = embed(m, x_va, device=device) if x_va is not None else None
        out[name] = space_diagnostics(e_tr, y_tr, g_tr, e_va, y_va, seed=seed)
    a, b = out["embedder"].get("linear_probe_val_auc"), out["random_init"].get("linear_probe_val_auc")
    out["linear_probe_gain"] = None if a is None or b is None else float(a - b)
    return out


# -- the run -----------------------------------------------------------------------------------
def pretrain_on_manifest(manifest: Manifest, cfg: PretrainConfig, out_dir: str | Path, *, split_seed: int = 0,
                         resume: bool = False, progress: bool = True, diagnose: bool = True) -> dict[str, Any]:
    """Pretrain on the train split's images; write ``embedder.pt``, ``report.json``, ``report.md``
    (+ ``loss.png``). ``pretrain_state.pt`` keeps the resumable state until the run finishes."""
    from edgedistal.data.images import load_images
    from edgedistal.data.split import ensure_split
    from edgedistal.runtime.artifacts import detector_identity
    from edgedistal.utils.machine import machine_summary

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest = ensure_split(manifest, seed=split_seed)
    train = manifest.split("train")
    if len(train) < 2:
        raise EdgedistalError(f"the train split has {len(train)} image(s); pretraining needs a pool",
                              "pretrain on a manifest whose train split holds the unlabelled pool")
    paths = train.paths  # the only thing read from the train rows: no labels, no val/test
    images = load_images(paths, cfg.image_size, progress=progress)
    state = out / STATE_FILE
    if not resume:
        state.unlink(missing_ok=True)
    res: PretrainResult = pretrain(images, cfg, state_path=state, resume=resume,
                                   data_digest=paths_digest(paths), progress=progress)
    summary = {"steps": res.steps, "wall_s": round(res.wall_s, 2), "images_per_s": round(res.images_per_s, 1),
               "stopped": res.stopped, "device": res.device, "precision": res.precision, "n_images": len(paths)}
    report: dict[str, Any] = {"summary": summary, "config": asdict(cfg), "history": res.history,
                              "quality": quality(res.model, images, cfg),
                              "machine": machine_summary(res.device)}
    identity = {**detector_identity(res.model), "kind": "embedder"}
    # the weights first (diagnostics can be long and must not cost the finished training)
    save_embedder(out / EMBEDDER_FILE, res.model, identity, pretrain=asdict(cfg), history=res.history,
                  summary=summary, split_seed=split_seed)
    if diagnose and "label" in manifest.df:
        report["diagnostics"] = diagnostics(res.model, cfg, train, manifest.split("val"), images, seed=cfg.seed)
    write_json_atomic(out / REPORT_JSON, report)
    _plot_loss(res.history, out / "loss.png")
    write_text_atomic(out / REPORT_MD, render_report(report))
    save_embedder(out / EMBEDDER_FILE, res.model, identity, pretrain=asdict(cfg), history=res.history,
                  summary=summary, split_seed=split_seed, quality=report["quality"],
                  diagnostics=report.get("diagnostics", {}))
    state.unlink(missing_ok=True)
    report["checkpoint"] = str(out / EMBEDDER_FILE)
    return report


def _plot_loss(history: list[dict], path: Path) -> None:
    if not history:
        return
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - matplotlib is a dependency
        return
    from edgedistal.utils.io import atomic_path

    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot([h["step"] for h in history], [h["loss"] for h in history])
    ax.set_xlabel("step")
    ax.set_ylabel("NT-Xent loss")
    ax.set_title("embedder pretraining")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def _f(v: Any) -> str:
    return "–" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)


def render_report(report: dict[str, Any]) -> str:
    s, q, c = report["summary"], report["quality"], report["config"]
    lines = [
        "# Embedder pretraining (SimCLR)", "",
        f"{c['backbone']} at {c['image_size']} px, {s['steps']} steps × batch {c['batch_size']} on {s['n_images']:,} "
        f"train images, {s['wall_s']:.0f} s on {s['device']} ({s['precision']}), {s['images_per_s']:.0f} img/s, "
        f"stopped: {s['stopped']}.", "",
        "## Label-free quality", "",
        "| loss first → last | std per dim (uniform ref) | effective rank / dim | alignment ↓ | uniformity ↓ |",
        "|---|---|---|---|---|",
    ]
    h = report.get("history") or [{"loss": float("nan")}]
    lines.append(f"| {h[0]['loss']:.3f} → {h[-1]['loss']:.3f} | {q['std_per_dim']:.4f} ({q['std_uniform_reference']:.4f}) "
                 f"| {q['effective_rank']:.1f} / {q['embedding_dim']} | {q['alignment']:.3f} | {q['uniformity']:.3f} |")
    d = report.get("diagnostics")
    if d:
        lines += ["", "## Diagnostics with labels (never used for training)", "",
                  f"{d['n_train']} train and {d['n_val']} val images; frozen features.", "",
                  "| space | linear-probe val AUC | kNN val AUC | kNN label purity | same-group top-5 | "
                  "pure δ-balls (small δ) | pure δ-balls (large δ) |", "|---|---|---|---|---|---|---|"]
        for name in ("embedder", "random_init"):
            r = d[name]
            b = r["delta_ball_purity"]
            lines.append(f"| {name} | {_f(r.get('linear_probe_val_auc'))} | {_f(r.get('knn_val_auc'))} | "
                         f"{_f(r['knn_label_purity'])} | {_f(r['same_group_top5'])} | "
                         f"{_f(b['delta_small']['pure_ball_share'])} | {_f(b['delta_large']['pure_ball_share'])} |")
        lines += ["", f"Linear-probe gain over random init: {_f(d.get('linear_probe_gain'))}."]
    return "\n".join(lines) + "\n"
