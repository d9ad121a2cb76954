"""Pack round trip: one small file carries a face-crop dataset to a machine without ../shared."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgedistal.data.images import load_images
from edgedistal.data.pack import load_pack, read_pack_info, unpack_pack, write_pack
from edgedistal.errors import EdgedistalError


@pytest.fixture()
def manifest(synth_dir: Path):
    from edgedistal.data.layouts import read_layout
    from edgedistal.data.split import group_split

    return group_split(read_layout(synth_dir).manifest.take(np.arange(40)), seed=1)


def test_pack_round_trip_keeps_rows_and_pixels(manifest, tmp_path: Path) -> None:
    info = write_pack(manifest, tmp_path / "p.npz", size=48, quality=90, meta={"dataset": "synth"})
    assert info["count"] == len(manifest) and info["dataset"] == "synth"
    assert read_pack_info(tmp_path / "p.npz")["size"] == 48
    m, x = load_pack(tmp_path / "p.npz", workers=2)
    assert x.shape == (len(manifest), 48, 48, 3) and x.dtype == np.uint8
    for col in ("sample_id", "label", "group", "video", "split", "frame"):
        assert m.df[col].tolist() == manifest.df[col].tolist(), col
    ref = load_images(manifest.paths, 48, cache=False)  # RGB, same resize
    err = np.abs(x.astype(np.int16) - ref.astype(np.int16)).mean()
    assert err < 4.0  # lossy WebP q90, but the same images in the same order
    shuffled = np.abs(x[::-1].astype(np.int16) - ref.astype(np.int16)).mean()
    assert shuffled > err  # order matters: the check can fail


def test_unpack_writes_readable_files(manifest, tmp_path: Path) -> None:
    write_pack(manifest, tmp_path / "p.npz", size=32, fmt="jpg", quality=95)
    m = unpack_pack(tmp_path / "p.npz", tmp_path / "files")
    assert all(Path(p).exists() for p in m.paths)
    _, packed = load_pack(tmp_path / "p.npz")
    assert np.array_equal(load_images(m.paths, 32, cache=False), packed)
    assert m.df["sample_id"].tolist() == manifest.df["sample_id"].tolist()


def test_missing_or_bad_pack_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EdgedistalError, match="pack not found"):
        load_pack(tmp_path / "nope.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(EdgedistalError, match="not a readable"):
        load_pack(tmp_path / "bad.npz")
