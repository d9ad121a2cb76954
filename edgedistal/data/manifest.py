"""The Manifest: one row per sample, the unit every command reads and writes.

Stored as Parquet (CSV export for humans). Validation happens on construction, load and save,
so a bad file fails at the door with a message that names it rather than deep inside training.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from edgedistal.errors import EdgedistalError
from edgedistal.utils.io import atomic_path
from edgedistal.utils.safepath import normal

#: Required columns and their dtypes. ``label``: 0 real, 1 fake. ``frame`` is -1 for still images.
COLUMNS: dict[str, str] = {
    "sample_id": "string",
    "path": "string",
    "label": "int8",
    "group": "string",
    "video": "string",
    "frame": "int32",
    "source": "string",
    "method": "string",
    "split": "string",
}
LABELS = {0: "real", 1: "fake"}
SPLITS = {"", "train", "val", "test"}


def sample_id(source: str, rel_path: str, frame: int = -1) -> str:
    """Stable id: the same file (and frame) of the same dataset always hashes the same."""
    key = f"{source}|{rel_path}|{frame}".encode()
    return hashlib.sha1(key).hexdigest()[:16]


def label_from_text(value: object, where: str) -> int:
    """Map dataset label spellings (REAL/FAKE, 0/1, real/fake) onto 0/1, or fail clearly."""
    text = str(value).strip().lower()
    if text in {"0", "real", "original", "pristine", "false"}:
        return 0
    if text in {"1", "fake", "manipulated", "synthesis", "true"}:
        return 1
    raise EdgedistalError(
        f"{where}: unknown label {value!r}",
        "labels must be one of REAL/FAKE, real/fake or 0/1",
    )


@dataclass
class Manifest:
    """A validated table of samples. ``df`` always holds at least :data:`COLUMNS`."""

    df: pd.DataFrame

    def __post_init__(self) -> None:
        self.df = normalise(self.df)

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_records(cls, records: Sequence[dict]) -> Manifest:
        return cls(pd.DataFrame.from_records(list(records)))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Manifest:
        path = Path(path)
        if not path.exists():
            raise EdgedistalError(
                f"{path}: manifest not found",
                "create one with `edgedistal ingest SRC --out manifest.parquet`",
            )
        try:
            if path.suffix == ".csv":
                df = pd.read_csv(path, dtype={"group": str, "video": str, "method": str})
            else:
                df = pd.read_parquet(path)
        except Exception as exc:  # pyarrow/pandas raise many types for corrupt files
            raise EdgedistalError(
                f"{path}: cannot read manifest ({exc.__class__.__name__}: {exc})",
                "pass a .parquet or .csv written by edgedistal, or re-run `edgedistal ingest`",
            ) from exc
        try:
            m = cls(df)
        except EdgedistalError as exc:
            raise EdgedistalError(f"{path}: {exc}", exc.hint) from exc
        m.df["path"] = normal_paths(m.df["path"]).astype(COLUMNS["path"])
        return m

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write atomically; ``.csv`` writes CSV, anything else Parquet."""
        path = Path(path)
        df = normalise(self.df)
        with atomic_path(path) as tmp:
            if path.suffix == ".csv":
                df.to_csv(tmp, index=False)
            else:
                df.to_parquet(tmp, index=False)
        return path

    # -- views --------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.df)

    @property
    def labels(self) -> np.ndarray:
        return self.df["label"].to_numpy(dtype=np.int64)

    @property
    def groups(self) -> np.ndarray:
        return self.df["group"].to_numpy(dtype=object)

    @property
    def paths(self) -> list[str]:
        return self.df["path"].astype(str).tolist()

    def take(self, indices: Sequence[int] | np.ndarray) -> Manifest:
        return Manifest(self.df.iloc[np.asarray(indices, dtype=np.int64)].reset_index(drop=True))

    def where(self, mask: np.ndarray | pd.Series) -> Manifest:
        return Manifest(self.df[np.asarray(mask, dtype=bool)].reset_index(drop=True))

    def split(self, name: str) -> Manifest:
        return self.where(self.df["split"] == name)

    def summary(self) -> pd.DataFrame:
        """Counts per source × method × label, plus the number of groups and videos."""
        df = self.df.assign(label_name=self.df["label"].map(LABELS))
        out = (
            df.groupby(["source", "method", "label_name"], dropna=False)
            .agg(samples=("sample_id", "size"), groups=("group", "nunique"), videos=("video", "nunique"))
            .reset_index()
        )
        return out


def normal_paths(paths: pd.Series) -> pd.Series:
    """Absolute, ``..``-free paths (relative ones against the working folder): a manifest row
    like ``../../x.jpg`` can never steer a writer out of its folder. Already-normal absolute
    paths (every path ingest writes) skip the work."""
    text = paths.astype(str)
    odd = ~text.str.startswith("/") | text.str.contains("/.", regex=False) | text.str.contains("//", regex=False)
    if odd.any():
        text = text.copy()
        text[odd] = [str(normal(p)) for p in text[odd]]
    return text


def looks_like_manifest(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a Parquet file or a CSV with path,label columns: an earlier output
    that re-running may replace (anything else is someone's file and must not be clobbered)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    if head.startswith(b"PAR1"):
        return True
    header = {c.strip().strip('"').lower() for c in head.split(b"\n", 1)[0].decode("utf-8", "replace").split(",")}
    return {"path", "label"} <= header


def require_both_classes(manifest: Manifest, where: str | os.PathLike[str]) -> None:
    """Training needs real and fake samples; one class gives a detector that means nothing."""
    present = set(np.unique(manifest.labels).tolist())
    if len(present) < 2:
        only = LABELS[present.pop()] if present else "no"
        raise EdgedistalError(
            f"{where}: only {only} samples ({len(manifest):,} rows); a detector needs both real and fake",
            "add samples of the other class, or check the labels (0 real, 1 fake)",
        )


def normalise(df: pd.DataFrame) -> pd.DataFrame:
    """Fill optional columns, coerce dtypes and validate. Raises EdgedistalError on bad data."""
    df = df.copy()
    missing = [c for c in ("path", "label") if c not in df.columns]
    if missing:
        raise EdgedistalError(
            f"manifest lacks required column(s) {missing}",
            "a manifest needs at least `path` and `label` (0 real, 1 fake)",
        )
    if "source" not in df.columns:
        df["source"] = "unknown"
    if "frame" not in df.columns:
        df["frame"] = -1
    if "video" not in df.columns:
        df["video"] = df["path"].astype(str)
    if "group" not in df.columns:
        df["group"] = df["video"].astype(str)
    if "method" not in df.columns:
        df["method"] = ""
    if "split" not in df.columns:
        df["split"] = ""
    df["frame"] = pd.to_numeric(df["frame"], errors="coerce").fillna(-1)
    if "sample_id" not in df.columns:
        df["sample_id"] = [
            sample_id(str(s), str(p), int(f))
            for s, p, f in zip(df["source"], df["path"], df["frame"], strict=True)
        ]
    labels = pd.to_numeric(df["label"], errors="coerce")
    bad = ~labels.isin([0, 1])
    if bad.any():
        first = df.loc[bad].iloc[0]
        raise EdgedistalError(
            f"{int(bad.sum())} row(s) have a label outside {{0, 1}} (first: {first['path']} -> {first['label']!r})",
            "labels must be 0 (real) or 1 (fake)",
        )
    df["label"] = labels
    for col in ("method", "split", "group", "video", "source"):
        df[col] = df[col].fillna("").astype(str)
    bad_split = ~df["split"].isin(SPLITS)
    if bad_split.any():
        raise EdgedistalError(
            f"unknown split value(s) {sorted(set(df.loc[bad_split, 'split']))}",
            "split must be empty, train, val or test",
        )
    if df["sample_id"].duplicated().any():
        dup = df.loc[df["sample_id"].duplicated(), "path"].iloc[0]
        raise EdgedistalError(
            f"duplicate sample_id (first duplicate path: {dup})",
            "each (source, path, frame) may appear only once; de-duplicate the input",
        )
    df = df.astype(COLUMNS)
    extra = [c for c in df.columns if c not in COLUMNS]
    return df[list(COLUMNS) + extra].reset_index(drop=True)
