"""Peer arms: other projects' selection engines behind the :class:`Strategy` protocol, so that
``evaluate`` can put them in the same paired table as ours.

:class:`Mundig` is Lightly's selection engine (``lightly-mundig``, MIT, Rust; the engine behind
LightlyStudio). It combines strategies by strength: *balancing* towards a class distribution,
*weighting* by per-sample weights (here: its own typicality, the mean-kNN-distance density it
computes in Rust) and, optionally, *diversifying* (farthest-point spread in the embedding).
We call it as LightlyStudio's "balance + typicality (+ diversity)" recipe does; it is an optional
dependency (``pip install edgedistal[peer]``) because it is a peer to measure against, not a
part of the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgedistal.acquire.state import SelectionState


def _engine():
    try:
        import lightly_mundig
    except ImportError as exc:  # an optional peer: say how to get it
        from edgedistal.errors import EdgedistalError

        raise EdgedistalError("the mundig strategies need lightly-mundig, which is not installed",
                              "pip install 'edgedistal[peer]' (or pip install lightly-mundig)") from exc
    return lightly_mundig


@dataclass
class Mundig:
    """Lightly's engine: label balancing + typicality weighting (+ diversity when ``diversity``
    > 0), each with strength 1 as LightlyStudio's defaults combine them.

    Balancing reads the dataset's labels when the run is label-aware (``state.pool_labels``),
    else the learner's predicted classes, exactly as :class:`~edgedistal.acquire.wrappers.Balanced`
    does, so the two recipes differ only in how they pick inside the balance.
    """

    neighbours: int = 20
    real_fraction: float = 0.5
    diversity: float = 0.0
    threshold: float = 0.5
    name: str = "mundig"

    def select(self, state: SelectionState, k: int) -> np.ndarray:
        engine = _engine()
        avail = np.flatnonzero(state.available())
        k = min(int(k), len(avail))
        if k <= 0:
            return np.empty(0, np.int64)
        emb = state.embeddings[avail].float().cpu().numpy()
        emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        rows = emb.tolist()
        if state.pool_labels is not None:
            fake = np.asarray(state.pool_labels)[avail] == 1
        else:
            fake = (state.probs[avail].float().cpu().numpy() >= self.threshold)
        sel = engine.Selection()
        sel.add_balancing_strategy([[0.0, 1.0] if f else [1.0, 0.0] for f in fake.tolist()],
                                   [self.real_fraction, 1.0 - self.real_fraction], 1.0)
        nn = max(1, min(self.neighbours, len(avail) - 1))
        typical = engine.Typicality(rows).calculate_typicality(nn) if len(avail) > 1 else [1.0]
        sel.add_weighting_strategy([float(t) for t in typical], 1.0)
        if self.diversity > 0:
            sel.add_diversifying_strategy(rows, float(self.diversity))
        picked = np.asarray(sel.run_selection([], len(avail), k), np.int64)
        out = avail[picked]
        state.note(out, self.name)
        return out
