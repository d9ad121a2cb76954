from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from edgedistal.data.manifest import Manifest, label_from_text
from edgedistal.data.split import check_no_group_leak, group_split
from edgedistal.data.synth import SynthConfig, generate
from edgedistal.errors import EdgedistalError


def _manifest(n_groups: int = 30) -> Manifest:
    _, table = generate(SynthConfig(n_groups=n_groups, frames_per_video=3, size=32, seed=1))
    table = table.assign(path=[f"/x/{v}_{f}.png" for v, f in zip(table.video, table.frame, strict=True)], source="synth")
    return Manifest(table)


def test_manifest_roundtrip_parquet_and_csv(tmp_path):
    m = _manifest()
    for name in ("m.parquet", "m.csv"):
        m.save(tmp_path / name)
        back = Manifest.load(tmp_path / name)
        pd.testing.assert_frame_equal(back.df[list(m.df.columns)], m.df, check_dtype=False)
    assert not list(tmp_path.glob("*.tmp")), "atomic write left a temporary file"


def test_manifest_rejects_bad_labels_and_names_the_file(tmp_path):
    df = _manifest().df.copy()
    df["label"] = df["label"].astype(int)
    df.loc[3, "label"] = 7
    df.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(EdgedistalError, match=r"bad\.csv.*label outside"):
        Manifest.load(tmp_path / "bad.csv")


def test_manifest_missing_file_error_names_fix(tmp_path):
    with pytest.raises(EdgedistalError) as err:
        Manifest.load(tmp_path / "nope.parquet")
    assert "nope.parquet" in str(err.value) and "ingest" in err.value.hint


def test_label_spellings():
    assert [label_from_text(x, "t") for x in ("REAL", "FAKE", "0", "1", "fake")] == [0, 1, 0, 1, 1]
    with pytest.raises(EdgedistalError, match="unknown label"):
        label_from_text("maybe", "row 3")


def test_group_split_no_leak_fractions_and_seed():
    m = _manifest(60)
    s = group_split(m, (0.7, 0.15, 0.15), seed=5)
    check_no_group_leak(s)
    frac = s.df["split"].value_counts(normalize=True)
    assert abs(frac["train"] - 0.7) < 0.08 and frac["test"] > 0.08
    # each split keeps both classes
    assert (s.df.groupby("split")["label"].nunique() == 2).all()
    again = group_split(m, (0.7, 0.15, 0.15), seed=5)
    assert (again.df["split"] == s.df["split"]).all()
    other = group_split(m, (0.7, 0.15, 0.15), seed=6)
    assert (other.df["split"] != s.df["split"]).any()


def test_leak_detector_catches_leak():
    m = group_split(_manifest(), seed=0)
    df = m.df.copy()
    g = df["group"].iloc[0]
    df.loc[df.index[df["group"] == g][0], "split"] = "test" if df["split"].iloc[0] != "test" else "train"
    with pytest.raises(EdgedistalError, match="several splits"):
        check_no_group_leak(Manifest(df))


def test_synth_is_deterministic_and_grouped():
    a, ta = generate(SynthConfig(n_groups=4, frames_per_video=3, size=48, seed=9))
    b, tb = generate(SynthConfig(n_groups=4, frames_per_video=3, size=48, seed=9))
    c, _ = generate(SynthConfig(n_groups=4, frames_per_video=3, size=48, seed=10))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    pd.testing.assert_frame_equal(ta, tb)
    assert a.shape == (4 * 3 * 3, 48, 48, 3)
    # every fake video shares its group with exactly one real video
    per_group = ta.groupby("group")["label"].agg(["min", "max"])
    assert (per_group["min"] == 0).all() and (per_group["max"] == 1).all()
    # fakes differ from reals of the same identity mostly inside the face (self-blend)
    assert ta.loc[ta.label == 1, "strength"].between(0.15, 0.9).all()
