"""A generated deepfake dataset: the embedded default for `edgedistal demo` and unit tests.

Procedural faces are grouped into identities; each identity has one real "video" (near-duplicate
frames with small pose, light and expression changes) and several fake videos made from it by
self-blending (after SBI, Shiohara & Yamasaki, CVPR 2022): a colour/geometry-perturbed copy of
the face is blended back into the inner face through a soft elliptical mask. The blend strength
varies per fake video, so some fakes are easy and some nearly invisible. Deterministic by seed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from edgedistal.utils.io import atomic_path


@dataclass(frozen=True)
class SynthConfig:
    n_groups: int = 40
    fakes_per_real: int = 2
    frames_per_video: int = 8
    size: int = 64
    seed: int = 0
    #: Blend strength range for fakes; the low end gives hard fakes.
    min_strength: float = 0.15
    max_strength: float = 0.9


def _identity(rng: np.random.Generator) -> dict:
    skin = rng.uniform([90, 120, 160], [170, 190, 240])  # BGR
    return {
        "skin": skin,
        "bg": rng.uniform(20, 235, size=3),
        "hair": rng.uniform(10, 120, size=3),
        "eye": rng.uniform(20, 160, size=3),
        "face_w": rng.uniform(0.28, 0.36),
        "face_h": rng.uniform(0.36, 0.44),
        "eye_dx": rng.uniform(0.10, 0.15),
        "eye_y": rng.uniform(-0.08, -0.02),
        "eye_r": rng.uniform(0.025, 0.045),
        "mouth_w": rng.uniform(0.07, 0.13),
        "mouth_y": rng.uniform(0.14, 0.2),
        "hair_h": rng.uniform(0.05, 0.2),
        "texture_seed": int(rng.integers(0, 2**31 - 1)),
    }


def _render(ident: dict, size: int, rng: np.random.Generator) -> np.ndarray:
    """Draw one frame of an identity with small per-frame jitter (pose, light, expression)."""
    s = size * 2  # draw at 2x, downscale with an area filter for anti-aliasing
    img = np.empty((s, s, 3), np.uint8)
    img[:] = np.clip(ident["bg"] + rng.normal(0, 4, 3), 0, 255)
    cx = s / 2 + rng.normal(0, 0.015) * s
    cy = s / 2 + rng.normal(0, 0.015) * s
    light = rng.normal(1.0, 0.05)
    skin = np.clip(ident["skin"] * light, 0, 255)
    fw, fh = ident["face_w"] * s, ident["face_h"] * s
    angle = rng.normal(0, 4)
    hair = tuple(float(v) for v in ident["hair"])
    cv2.ellipse(img, (int(cx), int(cy - fh * 0.15)), (int(fw * 1.08), int(fh * (0.9 + ident["hair_h"]))), angle, 180, 360, hair, -1)
    cv2.ellipse(img, (int(cx), int(cy)), (int(fw), int(fh)), angle, 0, 360, tuple(float(v) for v in skin), -1)
    # skin texture: identity-fixed low-frequency noise, so real skin is not flat
    tex = ident.get(("tex", s))
    if tex is None:
        trng = np.random.default_rng(ident["texture_seed"])
        small = trng.normal(0, 6, (8, 8)).astype(np.float32)
        tex = ident[("tex", s)] = cv2.resize(small, (s, s), interpolation=cv2.INTER_CUBIC)[..., None]
    mask = np.zeros((s, s, 1), np.uint8)
    cv2.ellipse(mask, (int(cx), int(cy)), (int(fw), int(fh)), angle, 0, 360, 255, -1)
    img = np.where(mask > 0, np.clip(img + tex, 0, 255), img).astype(np.uint8)
    ex, ey, er = ident["eye_dx"] * s, cy + ident["eye_y"] * s, ident["eye_r"] * s
    blink = rng.uniform(0.5, 1.0)
    for sign in (-1, 1):
        c = (int(cx + sign * ex), int(ey))
        cv2.ellipse(img, c, (int(er * 1.6), int(er * blink)), angle, 0, 360, (245, 245, 245), -1)
        cv2.circle(img, c, max(1, int(er * 0.7 * blink)), tuple(float(v) for v in ident["eye"]), -1)
        cv2.line(img, (int(c[0] - er * 1.6), int(ey - er * 1.8)), (int(c[0] + er * 1.6), int(ey - er * 2.0)), hair, max(1, s // 64))
    nose = np.array([[cx, cy - 0.02 * s], [cx - 0.03 * s, cy + 0.08 * s], [cx + 0.03 * s, cy + 0.08 * s]], np.int32)
    cv2.polylines(img, [nose], False, tuple(float(v) * 0.8 for v in skin), max(1, s // 96))
    open_ = rng.uniform(0.005, 0.03) * s
    mouth_c = (int(cx), int(cy + ident["mouth_y"] * s))
    cv2.ellipse(img, mouth_c, (int(ident["mouth_w"] * s), int(open_) + 1), angle, 0, 360, (60, 60, 150), -1)
    img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    noise = rng.normal(0, 2.0, img.shape).astype(np.float32)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def self_blend(img: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """SBI-style fake: blend a perturbed copy of ``img`` into its inner face with a soft mask."""
    size = img.shape[0]
    src = img.astype(np.float32)
    # colour perturbation of the "source face"
    tgt = src * rng.uniform(0.85, 1.15, 3) + rng.uniform(-18, 18, 3)
    # small geometric misalignment, the seam SBI teaches detectors to find
    m = cv2.getRotationMatrix2D((size / 2, size / 2), rng.uniform(-3, 3), rng.uniform(0.95, 1.06))
    m[:, 2] += rng.uniform(-0.03, 0.03, 2) * size
    tgt = cv2.warpAffine(tgt, m, (size, size), borderMode=cv2.BORDER_REFLECT)
    if rng.random() < 0.5:
        tgt = cv2.GaussianBlur(tgt, (0, 0), rng.uniform(0.5, 1.2))
    else:  # sharpen
        tgt = cv2.addWeighted(tgt, 1.6, cv2.GaussianBlur(tgt, (0, 0), 1.0), -0.6, 0)
    mask = np.zeros((size, size), np.float32)
    axes = (int(size * rng.uniform(0.17, 0.26)), int(size * rng.uniform(0.22, 0.32)))
    cv2.ellipse(mask, (size // 2, int(size * 0.53)), axes, 0, 0, 360, 1.0, -1)
    k = max(1.0, size * rng.uniform(0.02, 0.06))
    mask = cv2.GaussianBlur(mask, (0, 0), k)[..., None] * strength
    out = mask * tgt + (1 - mask) * src
    return np.clip(out, 0, 255).astype(np.uint8)


def generate(cfg: SynthConfig = SynthConfig()) -> tuple[np.ndarray, pd.DataFrame]:
    """Return ``(images uint8 [N,S,S,3] BGR, table)`` with columns video, group, frame, label, method, strength."""
    rng = np.random.default_rng(cfg.seed)
    images: list[np.ndarray] = []
    rows: list[dict] = []
    for g in range(cfg.n_groups):
        ident = _identity(rng)
        group = f"id{g:04d}"
        real_video = f"{group}_real"
        frame_seeds = rng.integers(0, 2**31 - 1, size=cfg.frames_per_video)
        real_frames = [_render(ident, cfg.size, np.random.default_rng(int(s))) for s in frame_seeds]
        for f, im in enumerate(real_frames):
            images.append(im)
            rows.append({"video": real_video, "group": group, "frame": f, "label": 0, "method": "", "strength": 0.0})
        for k in range(cfg.fakes_per_real):
            strength = float(rng.uniform(cfg.min_strength, cfg.max_strength))
            vrng = np.random.default_rng(int(rng.integers(0, 2**31 - 1)))
            for f in range(len(real_frames)):
                # re-render with new jitter: fakes are other takes of the same identity
                base = _render(ident, cfg.size, np.random.default_rng(int(frame_seeds[f]) + 7919 * (k + 1)))
                images.append(self_blend(base, strength, vrng))
                rows.append({"video": f"{group}_fake{k}", "group": group, "frame": f, "label": 1, "method": "sbi", "strength": strength})
    return np.stack(images), pd.DataFrame(rows)


def write_dataset(out_dir: str | os.PathLike[str], cfg: SynthConfig = SynthConfig()) -> Path:
    """Write PNG frames under ``out_dir/{real,fake}/`` and a ``metadata.csv`` for the csv layout.

    Returns the metadata path. Skips work when a dataset with the same config already exists.
    """
    out = Path(out_dir)
    meta_path = out / "metadata.csv"
    stamp = out / ".synth-config"
    if meta_path.exists() and stamp.exists() and stamp.read_text() == repr(cfg):
        return meta_path
    images, table = generate(cfg)
    paths = []
    for im, row in zip(images, table.itertuples(index=False), strict=True):
        rel = f"{'fake' if row.label else 'real'}/{row.video}_{row.frame:03d}.png"
        p = out / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(p), im)
        paths.append(rel)
    meta = table.assign(path=paths, label=table["label"].map({0: "REAL", 1: "FAKE"}))
    meta = meta[["path", "label", "group", "video", "frame", "method", "strength"]]
    with atomic_path(meta_path) as tmp:
        meta.to_csv(tmp, index=False)
    stamp.write_text(repr(cfg))
    return meta_path
