"""What a strategy may look at: :class:`SelectionState` (pool-aligned tensors, the labelled
mask, the one random generator) and the :class:`Strategy` protocol every strategy honours.

Every strategy has one method, ``select(state, k) -> np.ndarray`` of ``k`` distinct pool indices
that are neither labelled nor excluded. Randomness comes only from ``state.generator`` (a CPU
``torch.Generator``), so one seed gives one selection on any device.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np
import torch


@dataclass
class SelectionState:
    """What a strategy may look at. Pool-aligned arrays; only ``labels[labelled]`` are known.

    ``candidates`` (optional) further restricts what may be picked *without* counting as
    labelled (used by :class:`Balanced` and :class:`GroupSpread`).
    """

    embeddings: torch.Tensor  # [N, D]
    probs: torch.Tensor  # [N] fake probability
    labelled: np.ndarray  # [N] bool
    generator: torch.Generator = field(default_factory=lambda: torch.Generator().manual_seed(0))
    labels: np.ndarray | None = None  # [N] int, −1 where unknown
    groups: np.ndarray | None = None  # [N] any hashable (identity / video)
    mc_probs: torch.Tensor | None = None  # [T, N]
    grad_embeddings: torch.Tensor | None = None  # [N, G]
    candidates: np.ndarray | None = None  # [N] bool
    #: [N] int: every pool row's label, when the dataset being distilled is labelled (it usually
    #: is) and the run is label-aware. ``None`` simulates pure active learning (labels arrive only
    #: for picked rows). Read only by the label-aware wrappers :class:`Balanced` and :class:`Paired`.
    pool_labels: np.ndarray | None = None
    #: [N] source video of each row: :class:`GroupCap` counts a video's near-duplicate frames once.
    videos: np.ndarray | None = None
    #: Pool-aligned per-sample scores (training dynamics: ``aum``, ``el2n``, ``forgetting`` …)
    #: read by the difficulty strategies (:mod:`edgedistal.acquire.difficulty`).
    scores: dict[str, np.ndarray] | None = None
    #: Validation AUC of the learner that produced ``probs`` (NaN: none yet), for :class:`ColdStart`.
    val_auc: float = float("nan")
    #: Sink for why each row was picked (``{row: "ccs:stratum 12/50"}``); shared by the wrappers'
    #: views (``dataclasses.replace`` keeps the same dict), filled by strategies that know a reason.
    reasons: dict[int, str] | None = None

    @classmethod
    def build(
        cls,
        embeddings: np.ndarray | torch.Tensor,
        probs: np.ndarray | torch.Tensor,
        labelled: np.ndarray,
        *,
        seed: int = 0,
        device: str | torch.device = "cpu",
        **kw: object,
    ) -> SelectionState:
        """Move NumPy inputs to ``device`` and seed a CPU generator: the usual constructor."""
        dev = torch.device(device)
        emb = torch.as_tensor(embeddings).to(dev, non_blocking=True)
        if dev.type == "cuda" and emb.dtype == torch.float32 and emb.numel() > 64_000_000:
            emb = emb.half()  # 1M × 512 fp16 = 1 GiB; distances stay accurate on unit vectors
        pr = torch.as_tensor(probs).float().to(dev)
        mc = kw.pop("mc_probs", None)
        if mc is not None:
            kw["mc_probs"] = torch.as_tensor(mc).float().to(dev)
        gen = torch.Generator().manual_seed(int(seed))
        return cls(emb, pr, np.asarray(labelled, bool).copy(), gen, **kw)  # type: ignore[arg-type]

    @property
    def n(self) -> int:
        return int(self.embeddings.shape[0])

    @property
    def device(self) -> torch.device:
        return self.embeddings.device

    def available(self) -> np.ndarray:
        """Boolean mask of pickable pool rows."""
        ok = ~self.labelled
        if self.candidates is not None:
            ok &= self.candidates
        return ok

    def note(self, picks: np.ndarray, reason: str | list[str], outer: bool = False) -> None:
        """Record why ``picks`` were taken. The first reason stays (inner strategies are more
        specific); ``outer`` puts a wrapper's context in front of it instead."""
        if self.reasons is None:
            return
        many = isinstance(reason, list)
        for j, i in enumerate(np.asarray(picks, np.int64).tolist()):
            text = reason[j] if many else reason
            old = self.reasons.get(int(i))
            self.reasons[int(i)] = text if old is None else (f"{text}; {old}" if outer else old)

    def with_picked(self, picked: np.ndarray, candidates: np.ndarray | None = None) -> SelectionState:
        """A view where ``picked`` count as labelled (for wrappers that select in parts)."""
        lab = self.labelled.copy()
        lab[np.asarray(picked, np.int64)] = True
        return replace(self, labelled=lab, candidates=candidates)


class Strategy(Protocol):
    name: str

    def select(self, state: SelectionState, k: int) -> np.ndarray: ...


def chain(strategy: Strategy) -> Iterator[Strategy]:
    """The strategy and every strategy it hands over to, outermost first — the one walker of a
    wrapper chain: a wrapper (``balanced+``, ``groupcap+`` …) hands over to its ``inner``, a cold
    start to its ``warm`` strategy (its ``cold`` one only runs on label-free features)."""
    node: Strategy | None = strategy
    while node is not None:
        yield node
        node = getattr(node, "inner", None) or getattr(node, "warm", None)
