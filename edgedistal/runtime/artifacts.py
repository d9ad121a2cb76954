"""Find the model artifact for a precision, and refuse artifacts that do not belong together.

Two folders hold deployable models:

* ``export/`` (``edgedistal export``): ``model_<p>.onnx`` + one ``export.json`` for all of them;
* ``engines/`` (``edgedistal engines``): ``model_<p>.engine`` (TensorRT) or, where TensorRT is
  absent, the ONNX Runtime model ``model_<p>.onnx``, each with its own ``model_<p>.json``.

:func:`resolve` is the one place that maps (precision, folders) to files, so ``engines``,
``score``, ``bench`` and ``predict`` agree on what "fp16 from engines/" means. Every artifact
carries an *identity* (hash of the weights, input size, normalisation, embedding size) in its
sidecar and in the ONNX ``metadata_props``; :func:`verify` refuses a file whose identity differs
from its sidecar (or from the checkpoint it is compared with), instead of silently reporting two
different models' numbers side by side.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgedistal.errors import EdgedistalError
from edgedistal.utils.io import read_json_dict

log = logging.getLogger(__name__)
EXPORT_SIDECAR = "export.json"
META_PREFIX = "edgedistal."
#: Identity fields compared between artifacts, sidecars and checkpoints.
IDENTITY_KEYS = ("weights_sha256", "image_size", "normalisation", "embedding_dim")


#: File-name prefix per model kind: the detector's ``model_<p>``, the embedder's ``embedder_<p>``
#: (both may sit in one export/ or engines/ folder).
PREFIXES = ("model", "embedder")


def onnx_filename(precision: str, prefix: str = "model") -> str:
    return f"{prefix}_{precision}.onnx"


def engine_filename(precision: str, prefix: str = "model") -> str:
    return f"{prefix}_{precision}.engine"


def export_sidecar(prefix: str = "model") -> str:
    """``export.json`` for the detector, ``embedder.json`` for the embedder."""
    return EXPORT_SIDECAR if prefix == "model" else f"{prefix}.json"


def model_prefix(model: Any) -> str:
    """The artifact prefix of a loaded model (an :class:`~edgedistal.models.embedder.Embedder`
    says ``kind = "embedder"``; detectors have no kind)."""
    return "embedder" if getattr(model, "kind", None) == "embedder" else "model"


def artifact_sidecar(path: str | os.PathLike[str]) -> Path:
    """``model_<p>.json`` beside an engines-folder artifact (engine or ORT fallback model)."""
    return Path(path).with_suffix(".json")


# -- identity ---------------------------------------------------------------------------------
def weights_sha256(state_dict: dict[str, Any]) -> str:
    """sha256 over parameter names, shapes and bytes: the same for a re-saved checkpoint."""
    import numpy as np

    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu().contiguous()
        h.update(f"{name}|{tuple(t.shape)}|{t.dtype}|".encode())
        h.update(np.ascontiguousarray(t.float().numpy() if t.is_floating_point() else t.numpy()).tobytes())
    return h.hexdigest()


def detector_identity(detector: Any) -> dict[str, Any]:
    """What makes two models interchangeable: weights, input size, normalisation, embedding size."""
    cfg = detector.config
    kind = {"kind": "embedder"} if model_prefix(detector) == "embedder" else {}
    return {
        **kind,
        "weights_sha256": weights_sha256(detector.state_dict()),
        "backbone": cfg.backbone,
        "image_size": int(cfg.image_size),
        "normalisation": {"mean": [float(v) for v in cfg.mean], "std": [float(v) for v in cfg.std],
                          "scale": 255.0},
        "embedding_dim": int(detector.embed_dim),
    }


_CKPT_CACHE: dict[tuple[str, int, int], dict[str, Any]] = {}


def checkpoint_identity(checkpoint: str | os.PathLike[str]) -> dict[str, Any]:
    """:func:`detector_identity` of a checkpoint file (cached per path, size and mtime)."""
    from edgedistal.models.embedder import load_model

    p = Path(checkpoint)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _CKPT_CACHE:
        _CKPT_CACHE[key] = detector_identity(load_model(p)[0])
    return _CKPT_CACHE[key]


REEXPORT = "re-export with `edgedistal export` (and rebuild engines with `edgedistal engines`)"
#: export.json entries and the JSON type each must have when present
_SIDECAR_TYPES: dict[str, type | tuple[type, ...]] = {
    "identity": dict, "config": dict, "normalisation": dict, "outputs": dict, "models": dict,
    "calibration": (dict, type(None)),
}


def check_export_sidecar(side: dict[str, Any], path: str | os.PathLike[str]) -> dict[str, Any]:
    """``side`` if its entries have the types edgedistal writes; else a one-line refusal (a
    damaged or hand-edited ``export.json`` must not crash deep inside score/bench/engines)."""
    for key, kind in _SIDECAR_TYPES.items():
        if key in side and not isinstance(side[key], kind):
            raise EdgedistalError(f"{path}: damaged export sidecar ({key!r} is a {type(side[key]).__name__})", REEXPORT)
    if any(not isinstance(m, dict) for m in side.get("models", {}).values()):
        raise EdgedistalError(f"{path}: damaged export sidecar (an entry of 'models' is not an object)", REEXPORT)
    size = side.get("config", {}).get("image_size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or not 0 < size <= 4096):
        raise EdgedistalError(f"{path}: damaged export sidecar (image_size {size!r})", REEXPORT)
    return side


def read_export_sidecar(path: str | os.PathLike[str]) -> dict[str, Any]:
    """``export.json`` read and type-checked (:func:`check_export_sidecar`)."""
    return check_export_sidecar(read_json_dict(path, "export sidecar", REEXPORT), path)


def identity_from_export_sidecar(side: dict[str, Any]) -> dict[str, Any]:
    """The identity recorded in ``export.json`` (rebuilt from its config for older exports)."""
    if isinstance(side.get("identity"), dict):
        return dict(side["identity"])
    cfg = side.get("config") if isinstance(side.get("config"), dict) else {}
    norm = side.get("normalisation") if isinstance(side.get("normalisation"), dict) else {}
    outputs = side.get("outputs") if isinstance(side.get("outputs"), dict) else {}
    emb = outputs.get("embedding")
    emb = emb if isinstance(emb, list) and len(emb) > 1 else [None, None]
    return {k: v for k, v in {
        "backbone": cfg.get("backbone"), "image_size": cfg.get("image_size"),
        "normalisation": {"mean": norm.get("mean"), "std": norm.get("std"), "scale": norm.get("scale", 255.0)}
        if norm else None,
        "embedding_dim": emb[1] if isinstance(emb[1], int) else None,
    }.items() if v is not None}


def _canon(value: Any) -> str:
    """Comparable text of an identity value (lists of floats rounded: JSON round trips them)."""
    if isinstance(value, dict):
        return json.dumps({k: _canon(v) for k, v in sorted(value.items())}, sort_keys=True)
    if isinstance(value, list | tuple):
        return json.dumps([round(float(v), 6) if isinstance(v, float | int) else v for v in value])
    return str(value)


def identity_mismatch(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Identity keys present in both ``a`` and ``b`` whose values differ."""
    return [k for k in IDENTITY_KEYS if k in a and k in b and _canon(a[k]) != _canon(b[k])]


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else _canon(value)
    return text[:12] + "…" if len(text) > 16 and isinstance(value, str) else text


def require_same(what_a: str, a: dict[str, Any], what_b: str, b: dict[str, Any]) -> None:
    """Raise a one-line EdgedistalError naming both sides if their identities differ."""
    bad = identity_mismatch(a, b)
    if bad:
        diffs = "; ".join(f"{k}: {_short(a[k])} vs {_short(b[k])}" for k in bad)
        raise EdgedistalError(
            f"{what_a} and {what_b} are from different models ({diffs})",
            "re-export from the intended checkpoint (`edgedistal export`) and rebuild engines "
            "(`edgedistal engines`), or pass the matching --checkpoint",
        )


# -- ONNX metadata_props ----------------------------------------------------------------------
def metadata_entries(identity: dict[str, Any], **extra: Any) -> dict[str, str]:
    """``metadata_props`` key → string for an identity (+ precision, int8 target, calibration)."""
    out = {}
    for k, v in {**identity, **extra}.items():
        if v is not None:
            out[META_PREFIX + k] = v if isinstance(v, str) else json.dumps(v, sort_keys=True)
    return out


def stamp_onnx(path: str | os.PathLike[str], identity: dict[str, Any], **extra: Any) -> None:
    """Write the identity into the model's ``metadata_props`` (in place, atomically)."""
    import onnx

    from edgedistal.utils.io import atomic_path

    model = onnx.load(str(path))
    entries = metadata_entries(identity, **extra)
    keep = [p for p in model.metadata_props if p.key not in entries]
    del model.metadata_props[:]
    for p in keep:
        model.metadata_props.add(key=p.key, value=p.value)
    for k, v in entries.items():
        model.metadata_props.add(key=k, value=v)
    with atomic_path(path) as tmp:
        onnx.save(model, str(tmp))


def onnx_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``edgedistal.*`` entries of an ONNX file's ``metadata_props`` (JSON values decoded)."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises DecodeError and friends on a damaged file
        raise EdgedistalError(f"{path}: not a readable ONNX model ({exc.__class__.__name__})",
                              "re-export it with `edgedistal export`") from exc
    out: dict[str, Any] = {}
    for p in model.metadata_props:
        if p.key.startswith(META_PREFIX):
            try:
                out[p.key[len(META_PREFIX):]] = json.loads(p.value)
            except json.JSONDecodeError:
                out[p.key[len(META_PREFIX):]] = p.value
    return out


# -- resolution -------------------------------------------------------------------------------
@dataclass
class Artifact:
    """The files that serve one precision: an ONNX model and/or a TensorRT engine, with meta."""

    precision: str
    onnx: Path | None = None
    engine: Path | None = None
    sidecar: Path | None = None
    meta: dict[str, Any] = field(default_factory=dict)  # identity, sha256, calibration, int8 target

    @property
    def identity(self) -> dict[str, Any]:
        ident = self.meta.get("identity")
        return dict(ident) if isinstance(ident, dict) else {}

    def summary(self) -> dict[str, Any]:
        """What a report says about this artifact (file, runtime, int8 target, calibration)."""
        return {
            "precision": self.precision,
            "onnx": str(self.onnx) if self.onnx else None,
            "engine": str(self.engine) if self.engine else None,
            "int8_target": self.meta.get("int8_target"),
            "calibration": self.meta.get("calibration"),
            "weights_sha256": self.identity.get("weights_sha256"),
        }


def _from_export(export_dir: Path, precision: str, prefix: str = "model") -> Artifact | None:
    path = export_dir / onnx_filename(precision, prefix)
    if not path.exists():
        return None
    side_path = export_dir / export_sidecar(prefix)
    meta: dict[str, Any] = {}
    if side_path.exists():
        side = read_export_sidecar(side_path)
        model = side.get("models", {}).get(precision, {})
        meta = {"identity": identity_from_export_sidecar(side), "onnx_sha256": model.get("sha256"),
                "int8_target": model.get("int8_target") or ("tensorrt" if precision == "int8" else None),
                "calibration": model.get("calibration") or (side.get("calibration") if precision == "int8" else None)}
    return Artifact(precision, onnx=path, sidecar=side_path if side_path.exists() else None, meta=meta)


def _from_engines(engine_dir: Path, precision: str, prefix: str = "model") -> Artifact | None:
    engine, onnx_model = engine_dir / engine_filename(precision, prefix), engine_dir / onnx_filename(precision, prefix)
    if not engine.exists() and not onnx_model.exists():
        return None
    side = artifact_sidecar(engine if engine.exists() else onnx_model)
    meta = read_json_dict(side, "engine sidecar", REEXPORT) if side.exists() else {}
    return Artifact(precision, onnx=onnx_model if onnx_model.exists() else None,
                    engine=engine if engine.exists() else None, sidecar=side if side.exists() else None,
                    meta=meta)


def resolve(precision: str, export_dir: str | os.PathLike[str] | None = None,
            engine_dir: str | os.PathLike[str] | None = None, prefix: str = "model") -> Artifact | None:
    """The artifact for ``precision``: the engine from ``engine_dir``; the ONNX model from
    ``export_dir`` if given and present, else the ONNX Runtime model in ``engine_dir``.
    ``prefix``: ``model`` (the detector) or ``embedder``."""
    exp = _from_export(Path(export_dir), precision, prefix) if export_dir else None
    eng = _from_engines(Path(engine_dir), precision, prefix) if engine_dir else None
    if exp is None:
        return eng
    if eng is not None and eng.engine is not None:
        return Artifact(precision, onnx=exp.onnx, engine=eng.engine, sidecar=eng.sidecar,
                        meta={**exp.meta, **eng.meta})
    return exp


# -- verification -----------------------------------------------------------------------------
def verify(art: Artifact, checkpoint: str | os.PathLike[str] | None = None) -> Artifact:
    """Refuse an artifact that is empty, differs from its sidecar, or from ``checkpoint``."""
    from edgedistal.utils.io import sha256_file

    for path in (art.onnx, art.engine):
        if path is not None and path.stat().st_size == 0:
            raise EdgedistalError(f"{path}: empty file", "re-export / rebuild it")
    ident = art.identity
    if art.onnx is not None:
        recorded = art.meta.get("onnx_sha256") if art.engine is None else None
        if recorded and sha256_file(art.onnx) != recorded:
            raise EdgedistalError(
                f"{art.onnx}: sha256 differs from its sidecar {art.sidecar} (file replaced or truncated)",
                "re-export with `edgedistal export` (and rebuild engines) so model and sidecar match",
            )
        embedded = onnx_metadata(art.onnx)
        if embedded and ident:
            require_same(str(art.onnx), embedded, f"its sidecar {art.sidecar}", ident)
        ident = ident or embedded
    if not ident:
        log.warning("%s: carries no model identity (not written by `edgedistal export`?); its origin "
                    "cannot be checked, only its outputs", art.onnx or art.engine)
    if checkpoint is not None and ident:
        require_same(str(checkpoint), checkpoint_identity(checkpoint), str(art.onnx or art.engine), ident)
    return art


def check_artifacts(precisions: Any, export_dir: Any = None, engine_dir: Any = None,
                    checkpoint: Any = None, prefix: str = "model") -> dict[str, Artifact]:
    """Resolve and verify every present artifact for ``precisions``; all must share one identity."""
    found: dict[str, Artifact] = {}
    for prec in precisions:
        art = resolve(prec, export_dir, engine_dir, prefix)
        if art is not None:
            found[prec] = verify(art, checkpoint)
    first = next(iter(found.values()), None)
    for art in found.values():
        if first is not None and art is not first:
            require_same(str(first.onnx or first.engine), first.identity, str(art.onnx or art.engine),
                         art.identity)
    return found
