"""A PNG grid of face crops (one row per video, label in the corner) to eyeball extraction.

Wrong crops (background, hands, a second person, a misaligned box) are obvious to a person in a
second and invisible in any metric, so every extraction can write one of these.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from edgedistal.data.manifest import Manifest
from edgedistal.utils.io import atomic_path

_COLOURS = {0: (60, 170, 60), 1: (210, 50, 50)}  # RGB: real green, fake red


def _tile(path: str, tile: int, text: str, label: int) -> np.ndarray:
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:  # missing crop: grey tile, so the gap is visible rather than hidden
        img = np.full((tile, tile, 3), 128, np.uint8)
    img = cv2.cvtColor(
        cv2.resize(img, (tile, tile), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB
    )
    scale = max(0.3, tile / 300)
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    cv2.rectangle(img, (0, 0), (min(tile, tw + 4), th + 6), _COLOURS.get(label, (90, 90, 90)), -1)
    cv2.putText(
        img, text, (2, th + 3), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA
    )
    return img


def contact_sheet(
    manifest: Manifest | pd.DataFrame,
    out_path: str | os.PathLike[str],
    per_video: int = 6,
    max_videos: int = 16,
    tile: int = 96,
    palette: bool = True,
) -> Path:
    """Write a grid: up to ``max_videos`` rows (videos), ``per_video`` evenly chosen crops each.

    Tile captions read ``R``/``F`` (real/fake), the video name and the frame index.
    ``palette`` writes a 256-colour PNG (about a third of the size; plenty for checking crops).
    """
    df = manifest.df if isinstance(manifest, Manifest) else manifest
    if "face_index" in df.columns:
        df = df[df["face_index"] == 0]
    rows = []
    for video, g in list(df.groupby("video", sort=False))[:max_videos]:
        g = g.sort_values("frame")
        pick = np.unique(np.linspace(0, len(g) - 1, min(per_video, len(g))).round().astype(int))
        tiles = []
        for r in g.iloc[pick].itertuples(index=False):
            tag = "F" if int(r.label) else "R"
            tiles.append(
                _tile(str(r.path), tile, f"{tag} {str(video)[:14]} #{int(r.frame)}", int(r.label))
            )
        tiles += [np.zeros((tile, tile, 3), np.uint8)] * (per_video - len(tiles))
        rows.append(np.concatenate(tiles, axis=1))
    grid = np.concatenate(rows, axis=0) if rows else np.zeros((tile, tile * per_video, 3), np.uint8)
    out = Path(out_path)
    from PIL import Image

    img = Image.fromarray(grid)
    if palette:
        img = img.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    with atomic_path(out) as tmp:
        img.save(tmp, format="PNG", optimize=True)
    return out


def _name_tile(text: str, tile: int, width: int) -> np.ndarray:
    img = np.full((tile, width, 3), 40, np.uint8)
    scale = max(0.35, tile / 160)
    lines: list[str] = []
    for word in text.split():  # wrap on spaces, at most 3 lines of ~14 characters
        if lines and len(lines[-1]) + 1 + len(word) <= 14:
            lines[-1] += " " + word
        else:
            lines.append(word)
    for i, part in enumerate(lines[:3]):
        cv2.putText(img, part, (4, int(tile * 0.3) + i * int(tile * 0.28)), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (255, 255, 255), 1, cv2.LINE_AA)
    return img


def picks_sheet(
    df: pd.DataFrame,
    arms: dict[str, np.ndarray],
    out_path: str | os.PathLike[str],
    per_arm: int = 10,
    tile: int = 72,
    seed: int = 0,
) -> Path:
    """One row per arm (a method's picks, balanced random's picks …): ``per_arm`` crops drawn
    from the arm's manifest rows with one seeded draw, name on the left, R/F in each corner.

    Why: a person sees in a second whether a method picked near-duplicates of one identity,
    only fakes, or blurry frames, next to what random picked at the same budget."""
    rng = np.random.default_rng(seed)
    name_w = tile * 2
    rows = []
    for name, idx in arms.items():
        idx = np.asarray(idx)
        pick = np.sort(rng.choice(idx, size=min(per_arm, len(idx)), replace=False)) if len(idx) else idx
        tiles = [_name_tile(f"{name} ({len(idx)})", tile, name_w)]
        for r in df.iloc[pick].itertuples(index=False):
            tiles.append(_tile(str(r.path), tile, "F" if int(r.label) else "R", int(r.label)))
        tiles += [np.zeros((tile, tile, 3), np.uint8)] * (per_arm - len(pick))
        rows.append(np.concatenate(tiles, axis=1))
    grid = np.concatenate(rows, axis=0) if rows else np.zeros((tile, name_w + tile * per_arm, 3), np.uint8)
    from PIL import Image

    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        Image.fromarray(grid).save(tmp, format="PNG", optimize=True)
    return out
