"""Layout readers on tiny trees built here, and on the real ../shared data when present."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from edgedistal.data.layouts import LAYOUTS, detect_layout, read_layout
from edgedistal.data.split import check_no_group_leak, group_split
from edgedistal.errors import EdgedistalError


def touch(path: Path, data: bytes = b"placeholder") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def png(path: Path, value: int = 128) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((8, 8, 3), value, np.uint8))
    return path


def by_video(result) -> dict[str, dict]:
    return {r["video"]: r for r in result.manifest.df.to_dict("records")}


# -- folder ----------------------------------------------------------------------------------------
def test_folder_any_depth_groups_splits_and_problems(tmp_path):
    png(tmp_path / "train" / "real" / "clipA_001.png")
    png(tmp_path / "train" / "real" / "clipA_002.png")
    png(tmp_path / "train" / "fake" / "vidB" / "0001.png")
    png(tmp_path / "train" / "fake" / "vidB" / "0002.png")
    png(tmp_path / "test" / "real" / "real_00007.jpg")
    png(tmp_path / "test" / "fake" / "clipC-frame12.png")
    touch(tmp_path / "test" / "fake" / "empty.png", b"")
    touch(tmp_path / "train" / "real" / "notes.txt")

    assert detect_layout(tmp_path) == "folder"
    res = read_layout(tmp_path)
    df = res.manifest.df
    assert res.layout == "folder" and len(df) == 6
    assert set(df["media"]) == {"image"} and all(Path(p).is_absolute() for p in df["path"])
    groups = df.groupby("group")["path"].size().to_dict()
    assert groups == {"clipA": 2, "vidB": 2, "real_00007": 1, "clipC": 1}
    assert set(df.loc[df.group == "vidB", "label"]) == {1}
    assert set(df.loc[df.group == "clipA", "split"]) == {"train"}
    assert set(df.loc[df.group == "real_00007", "split"]) == {"test"}
    assert [Path(p.path).name for p in res.problems] == ["empty.png"]
    assert "0 bytes" in res.problems[0].reason
    with pytest.raises(EdgedistalError, match="empty.png"):
        read_layout(tmp_path, "folder", strict=True)


def test_verify_decodes_and_drops_corrupt_images(tmp_path):
    png(tmp_path / "real" / "a.png")
    png(tmp_path / "fake" / "b.png")
    touch(tmp_path / "fake" / "broken.png", b"not a png at all")
    assert len(read_layout(tmp_path).manifest) == 3  # cheap check: non-empty, so kept
    res = read_layout(tmp_path, verify=True)
    assert len(res.manifest) == 2
    assert [Path(p.path).name for p in res.problems] == ["broken.png"]


# -- csv -------------------------------------------------------------------------------------------
def test_csv_reads_generated_dataset(synth_dir):
    meta = pd.read_csv(synth_dir / "metadata.csv")
    assert detect_layout(synth_dir) == "csv"  # metadata.csv wins over the bare real/ fake/ folders
    res = read_layout(synth_dir)
    df = res.manifest.df
    assert res.problems == [] and len(df) == len(meta)
    assert df["group"].nunique() == meta["group"].nunique()
    want = dict(
        zip((str(synth_dir / p) for p in meta["path"]), meta["label"] == "FAKE", strict=True)
    )
    assert {p: bool(lab) for p, lab in zip(df["path"], df["label"], strict=True)} == want
    assert "strength" in df.columns and set(df["method"]) == set(meta["method"].fillna(""))
    assert all(Path(p).is_file() for p in df["path"])
    # the csv file itself also works as SRC; sample ids do not depend on where data lives
    again = read_layout(synth_dir / "metadata.csv")
    assert list(again.manifest.df["sample_id"]) == list(df["sample_id"])


def test_csv_bad_rows_are_problems_and_missing_columns_fatal(tmp_path):
    png(tmp_path / "img" / "a.png")
    png(tmp_path / "img" / "b.png")
    png(tmp_path / "img" / "c.png")
    abs_c = str((tmp_path / "img" / "c.png").absolute())
    pd.DataFrame(
        {
            "path": ["img/a.png", "img/b.png", "img/gone.png", abs_c, "img/a.png"],
            "label": ["REAL", "maybe", "FAKE", "1", "REAL"],
            "split": ["train", "", "", "validation", "train"],
            "camera": ["x", "y", "z", "w", "x"],
        }
    ).to_csv(tmp_path / "labels.csv", index=False)
    res = read_layout(tmp_path / "labels.csv")
    df = res.manifest.df
    assert sorted(Path(p).name for p in df["path"]) == ["a.png", "c.png"]
    assert dict(zip(df["camera"], df["split"], strict=True)) == {"x": "train", "w": "val"}
    reasons = " | ".join(f"{p.path}: {p.reason}" for p in res.problems)
    assert "unknown label 'maybe'" in reasons and "gone.png: file not found" in reasons
    assert "duplicate" in reasons
    pd.DataFrame({"file": ["img/a.png"], "label": [0]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(EdgedistalError, match=r"bad\.csv: missing column"):
        read_layout(tmp_path / "bad.csv")


# -- dfdc-faces ------------------------------------------------------------------------------------
def test_dfdc_faces_groups_by_original(tmp_path):
    faces = tmp_path / "faces_224"
    for stem in ("realaa", "fakebb", "fakecc", "realdd", "stray"):
        touch(faces / f"{stem}.jpg")
    touch(faces / "empty0.jpg", b"")
    rows = [
        ("realaa.mp4", "REAL", ""),
        ("fakebb.mp4", "FAKE", "realaa.mp4"),
        ("fakecc.mp4", "FAKE", "realaa.mp4"),
        ("realdd.mp4", "REAL", ""),
        ("missing.mp4", "FAKE", "realdd.mp4"),
        ("empty0.mp4", "FAKE", "realdd.mp4"),
    ]
    pd.DataFrame(
        [
            {
                "videoname": v,
                "original_width": 100,
                "original_height": 100,
                "label": lab,
                "original": o,
            }
            for v, lab, o in rows
        ]
    ).to_csv(tmp_path / "metadata.csv", index=False)
    assert detect_layout(tmp_path) == "dfdc-faces"
    res = read_layout(tmp_path)
    got = by_video(res)
    assert set(got) == {"realaa", "fakebb", "fakecc", "realdd"}
    assert got["fakebb"]["group"] == got["fakecc"]["group"] == got["realaa"]["group"] == "realaa"
    assert got["realdd"]["group"] == "realdd" and got["fakebb"]["source"] == "dfdc"
    reasons = {Path(p.path).stem: p.reason for p in res.problems}
    assert reasons["missing"] == "listed in metadata.csv but missing"
    assert "0 bytes" in reasons["empty0"] and "not in metadata.csv" in reasons["stray"]


# -- dfdc videos -----------------------------------------------------------------------------------
def test_dfdc_parts_report_missing_videos(tmp_path):
    meta = {
        "fakeone.mp4": {"label": "FAKE", "split": "train", "original": "realone.mp4"},
        "realone.mp4": {"label": "REAL", "split": "train", "original": None},
        "gone.mp4": {"label": "FAKE", "split": "train", "original": "realone.mp4"},
    }
    for part, names in (
        ("dfdc_train_part_0", ["fakeone.mp4", "realone.mp4"]),
        ("dfdc_train_part_1", []),
    ):
        d = tmp_path / part
        d.mkdir()
        (d / "metadata.json").write_text(
            json.dumps(meta if names else {"lonely.mp4": {"label": "odd"}})
        )
        for n in names:
            touch(d / n)
    touch(tmp_path / "dfdc_train_part_1" / "lonely.mp4")
    assert detect_layout(tmp_path) == "dfdc"
    res = read_layout(tmp_path)
    got = by_video(res)
    assert set(got) == {"fakeone", "realone"} and {r["media"] for r in got.values()} == {"video"}
    assert got["fakeone"]["group"] == got["realone"]["group"] == "realone"
    assert got["fakeone"]["frame"] == -1 and got["fakeone"]["method"] == ""
    assert got["fakeone"]["split"] == "" and got["fakeone"]["dfdc_split"] == "train"
    reasons = {Path(p.path).name: p.reason for p in res.problems}
    assert reasons["gone.mp4"] == "listed in metadata.json but missing"
    assert "unknown label 'odd'" in reasons["lonely.mp4"]


# -- FaceForensics++ / DFD -------------------------------------------------------------------------
def _ffpp_tree(root: Path, comps=("c23", "c40")) -> None:
    for comp in comps:
        for vid in ("000", "003", "001", "002"):
            touch(root / "original_sequences" / "youtube" / comp / "videos" / f"{vid}.mp4")
        for method in ("Deepfakes", "FaceSwap"):
            for pair in ("000_003", "003_000", "001_002"):
                touch(root / "manipulated_sequences" / method / comp / "videos" / f"{pair}.mp4")
        touch(root / "original_sequences" / "actors" / comp / "videos" / "01__walk.mp4")
        touch(
            root
            / "manipulated_sequences"
            / "DeepFakeDetection"
            / comp
            / "videos"
            / "01_02__walk__AB12CD.mp4"
        )
        touch(
            root
            / "manipulated_sequences"
            / "DeepFakeDetection"
            / comp
            / "videos"
            / "02_01__talk__EF34GH.mp4"
        )
    touch(root / "manipulated_sequences" / "Deepfakes" / "masks" / "videos" / "000_003.mp4")
    (root / "splits").mkdir()
    (root / "splits" / "train.json").write_text(json.dumps([["000", "003"]]))
    (root / "splits" / "test.json").write_text(json.dumps([["001", "002"]]))


def test_ffpp_groups_methods_splits_and_compression(tmp_path):
    _ffpp_tree(tmp_path)
    assert detect_layout(tmp_path) == "ffpp"
    res = read_layout(tmp_path)
    df = res.manifest.df
    assert len(df) == 4 + 2 * 3 and set(df["compression"]) == {"c23"}
    assert set(df["method"]) == {"", "Deepfakes", "FaceSwap"}  # DFD and masks are not FF++ rows
    fake = df[(df.video == "003_000") & (df.method == "Deepfakes")].iloc[0]
    assert fake["group"] == "003" and fake["label"] == 1 and fake["split"] == "train"
    assert set(df.loc[df.group == "001", "split"]) == {"test"}
    assert set(df.loc[df.video == "002", "split"]) == {"test"}
    assert set(read_layout(tmp_path, compression="c40").manifest.df["compression"]) == {"c40"}
    with pytest.raises(EdgedistalError, match=r"'c0' not present \(available: c23, c40\)"):
        read_layout(tmp_path, "ffpp", compression="c0")


def test_dfd_groups_by_target_actor(tmp_path):
    _ffpp_tree(tmp_path, comps=("c23",))
    res = read_layout(tmp_path, "dfd", source="google-dfd")
    got = by_video(res)
    assert set(got) == {"01__walk", "01_02__walk__AB12CD", "02_01__talk__EF34GH"}
    assert got["01_02__walk__AB12CD"]["group"] == got["01__walk"]["group"] == "01"
    assert got["02_01__talk__EF34GH"]["group"] == "02"
    assert {r["source"] for r in got.values()} == {"google-dfd"}
    only_dfd = tmp_path / "dfd_only"
    touch(only_dfd / "original_sequences" / "actors" / "c23" / "videos" / "05__x.mp4")
    touch(
        only_dfd
        / "manipulated_sequences"
        / "DeepFakeDetection"
        / "c23"
        / "videos"
        / "05_07__x__Q.mp4"
    )
    assert detect_layout(only_dfd) == "dfd"


# -- Celeb-DF --------------------------------------------------------------------------------------
def test_celebdf_groups_test_list_and_label_convention(tmp_path):
    for rel in (
        "Celeb-real/id0_0000.mp4",
        "Celeb-real/id1_0000.mp4",
        "Celeb-synthesis/id0_id1_0000.mp4",
        "Celeb-synthesis/id1_id0_0003.mp4",
        "YouTube-real/00042.mp4",
    ):
        touch(tmp_path / rel)
    # official convention: 1 = REAL, 0 = FAKE; the last line contradicts its folder
    (tmp_path / "List_of_testing_videos.txt").write_text(
        "1 YouTube-real/00042.mp4\n0 Celeb-synthesis/id0_id1_0000.mp4\n0 Celeb-real/id1_0000.mp4\n"
    )
    assert detect_layout(tmp_path) == "celebdf"
    res = read_layout(tmp_path)
    got = by_video(res)
    assert got["id0_id1_0000"]["group"] == "id0" and got["id1_id0_0003"]["group"] == "id1"
    assert got["00042"]["group"] == "00042"
    assert res.manifest.df["group"].nunique() == 3  # not one union-found blob
    assert got["id0_id1_0000"]["method"] == "celeb-synthesis" and got["id0_id1_0000"]["label"] == 1
    assert got["00042"]["label"] == 0 and got["00042"]["split"] == "test"
    assert got["id0_id1_0000"]["split"] == "test" and got["id0_0000"]["split"] == ""
    assert got["id1_0000"]["label"] == 0  # folder wins over the contradicting list line
    assert [Path(p.path).name for p in res.problems] == ["id1_0000.mp4"]


# -- errors ----------------------------------------------------------------------------------------
def test_bad_inputs_give_clear_errors(tmp_path):
    with pytest.raises(EdgedistalError, match="unknown layout 'nope'") as err:
        read_layout(tmp_path, "nope")
    assert "folder" in err.value.hint and "celebdf" in err.value.hint
    with pytest.raises(EdgedistalError, match="dataset not found"):
        read_layout(tmp_path / "absent")
    touch(tmp_path / "stuff" / "readme.txt")
    with pytest.raises(EdgedistalError, match="known layouts: " + ", ".join(LAYOUTS)):
        detect_layout(tmp_path / "stuff")
    with pytest.raises(EdgedistalError, match="no metadata.json"):
        read_layout(tmp_path / "stuff", "dfdc")
    empty = tmp_path / "empty"
    touch(empty / "real" / "a.png", b"")
    touch(empty / "fake" / "b.png", b"")
    with pytest.raises(EdgedistalError, match="no usable samples.*0 bytes"):
        read_layout(empty)


# -- real shared data ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, layout, rows, groups, fake, real, problems",
    [
        ("dfdc-faces-dev", "dfdc-faces", 23578, 4322, 19533, 4045, 0),
        ("yonsei-real-fake-160", "folder", 2041, None, 960, 1081, 0),
        ("celebdf-v2-sample", "celebdf", 10, None, 5, 5, 0),
        ("dfdc-sample-videos", "dfdc", 2, None, 2, 0, 3),
    ],
)
def test_real_shared_datasets(shared_data, name, layout, rows, groups, fake, real, problems):
    res = read_layout(shared_data(name))
    df = res.manifest.df
    assert res.layout == layout and len(df) == rows and len(res.problems) == problems
    assert int(df["label"].sum()) == fake and int((df["label"] == 0).sum()) == real
    if groups is not None:
        assert df["group"].nunique() == groups
    assert set(df["media"]) == ({"video"} if layout in {"celebdf", "dfdc"} else {"image"})
    if name == "dfdc-sample-videos":
        assert {p.reason for p in res.problems} == {"listed in metadata.json but missing"}


def test_dfdc_faces_group_split_never_leaks(shared_data):
    manifest = read_layout(shared_data("dfdc-faces-dev")).manifest
    split = group_split(manifest, (0.8, 0.1, 0.1), seed=0)
    check_no_group_leak(split)
    counts = split.df["split"].value_counts()
    assert set(counts.index) == {"train", "val", "test"} and counts["train"] > counts["test"]
