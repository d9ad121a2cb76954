"""Group-aware splits: a whole identity/source video lands in exactly one split.

Deepfakes share an identity with their source video, so an image-level split leaks identities
into the test set and inflates AUC. Groups are stratified by their fake share so each split keeps
the dataset's class balance.
"""

from __future__ import annotations

import numpy as np

from edgedistal.data.manifest import Manifest
from edgedistal.errors import EdgedistalError


def group_split(
    manifest: Manifest,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
) -> Manifest:
    """Return a copy of ``manifest`` with ``split`` set to train/val/test by group.

    Groups are binned by their fake fraction (stratification), shuffled with ``seed`` and
    assigned greedily so each split's sample count approaches its fraction.
    """
    fr = np.asarray(fractions, dtype=float)
    if fr.shape != (3,) or (fr < 0).any() or not np.isclose(fr.sum(), 1.0):
        raise EdgedistalError(
            f"split fractions {tuple(fractions)} must be three non-negative numbers summing to 1",
            "for example --split 0.8,0.1,0.1",
        )
    df = manifest.df
    stats = df.groupby("group", sort=True).agg(n=("label", "size"), fake=("label", "mean"))
    if len(stats) < 2 and fr[1:].sum() > 0:
        raise EdgedistalError(
            f"cannot split by group: only {len(stats)} group(s)",
            "a group is an identity/source video; the dataset needs several",
        )
    rng = np.random.default_rng(seed)
    strata = np.digitize(stats["fake"].to_numpy(), [0.25, 0.5, 0.75, 0.999])
    names = np.array(["train", "val", "test"])
    assign: dict[str, str] = {}
    for s in np.unique(strata):
        members = stats.index[strata == s].to_numpy()
        members = members[rng.permutation(len(members))]
        sizes = stats.loc[members, "n"].to_numpy()
        target = fr * sizes.sum()
        filled = np.zeros(3)
        for g, n in zip(members, sizes, strict=True):
            # Put the group where it closes the largest remaining gap relative to its target.
            deficit = np.where(fr > 0, (target - filled) / np.maximum(target, 1e-9), -np.inf)
            k = int(np.argmax(deficit))
            assign[g] = names[k]
            filled[k] += n
    out = df.copy()
    out["split"] = out["group"].map(assign).astype("string")
    return Manifest(out)


def check_no_group_leak(manifest: Manifest) -> None:
    """Raise if a group appears in more than one split (used by tests and before training)."""
    per_group = manifest.df[manifest.df["split"] != ""].groupby("group")["split"].nunique()
    leaked = per_group[per_group > 1]
    if len(leaked):
        raise EdgedistalError(
            f"{len(leaked)} group(s) appear in several splits (first: {leaked.index[0]})",
            "re-split with `group_split` so identities do not leak between train and test",
        )


def ensure_split(manifest: Manifest, seed: int = 0, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> Manifest:
    """Keep an existing split; otherwise split by group with ``seed``.

    Every command that needs train/val/test calls this, so `distill` and `evaluate` on the same
    unsplit manifest agree on the held-out groups without the user doing anything.
    """
    if (manifest.df["split"] != "").all():
        check_no_group_leak(manifest)
        return manifest
    return group_split(manifest, fractions, seed)


def restrict_train(manifest: Manifest, subset: Manifest, where: str = "the subset") -> Manifest:
    """Keep only ``subset``'s rows of ``manifest``'s train split; val and test stay as they are.

    This is how a detector is trained on a distilled set while early stopping and test metrics
    still use the full held-out groups. ``subset`` must come from this manifest's train split
    (same split), else the held-out groups would not be held out.
    """
    df = manifest.df
    train = df["split"] == "train"
    ids = set(subset.df["sample_id"].astype(str))
    stray = ids - set(df.loc[train, "sample_id"].astype(str))
    if stray:
        raise EdgedistalError(
            f"{where}: {len(stray)} of its {len(ids)} rows are not in the manifest's train split",
            "distil from this same manifest (same split, same --split-seed)",
        )
    keep = ~train | df["sample_id"].astype(str).isin(ids)
    return Manifest(df[keep.to_numpy()].reset_index(drop=True))
