"""The embedder: a label-free model (any timm backbone) whose feature space selection uses.

It is the second model of the design, beside the detector. It serves through the same deploy
contract (uint8 NHWC in → ``(prob, embedding)`` out) so every backend (torch, ONNX Runtime,
TensorRT) and the scorer run it unchanged; it has no detector head, so its ``prob`` output is
NaN by construction and scores written from it say so (selection refuses uncertainty strategies
on them). Its checkpoint kind (``embedder.pt``) holds only plain types (config dict, identity,
state_dict, history), so it loads with ``torch.load(weights_only=True)``: nothing is unpickled.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from edgedistal.errors import EdgedistalError
from edgedistal.models.registry import KNOWN_BACKBONES, Detector, DetectorConfig
from edgedistal.utils.io import atomic_path
from edgedistal.utils.safeload import load_pt, plain

FORMAT = "edgedistal-embedder/1"
KIND = "embedder"


class Embedder(nn.Module):
    """timm backbone → pooled features; ``forward`` gives (NaN logit [N], L2-normalised embedding).

    Input: float NCHW normalised with ``config.mean``/``config.std`` (as :class:`Detector`), so
    :class:`~edgedistal.models.registry.DeployModel` wraps it unchanged for export and serving.
    """

    kind = KIND

    def __init__(self, config: DetectorConfig, pretrained: bool = False):
        super().__init__()
        import timm

        self.config = config
        try:
            self.backbone = timm.create_model(config.backbone, pretrained=pretrained, num_classes=0)
        except RuntimeError as exc:
            raise EdgedistalError(
                f"unknown backbone {config.backbone!r} ({exc})",
                f"use a timm model name, e.g. one of {', '.join(KNOWN_BACKBONES)}",
            ) from exc
        except Exception as exc:  # no hub reachable for pretrained=True (offline machine)
            if not pretrained:
                raise
            raise EdgedistalError(f"cannot fetch timm pretrained weights for {config.backbone!r} "
                                  f"({exc.__class__.__name__})",
                                  "run where the model hub is reachable, or pretrain one: edgedistal pretrain") from exc
        self.embed_dim = int(getattr(self.backbone, "head_hidden_size", None) or self.backbone.num_features)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled, un-normalised backbone features (what SimCLR's projection head reads)."""
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x)
        # no detector head: the probability slot is NaN. full_like exports as Shape → ConstantOfShape,
        # which int8 calibration never sees (a NaN activation would break its ranges)
        nan = torch.full_like(f[:, 0], float("nan"), dtype=torch.float32)
        return nan, F.normalize(f.float(), dim=1)


def build_embedder(config: DetectorConfig, weights: str | os.PathLike[str] | None = None,
                   pretrained: bool = False) -> Embedder:
    """A fresh embedder; ``weights`` loads a local backbone state dict, ``pretrained`` timm hub weights."""
    model = Embedder(config, pretrained=pretrained)
    if weights:
        from edgedistal.models.registry import load_backbone_weights

        load_backbone_weights(model, weights)  # type: ignore[arg-type]  # needs .backbone + .config only
    return model


def save_embedder(path: str | os.PathLike[str], model: Embedder, identity: dict[str, Any] | None = None,
                  **extra: Any) -> Path:
    """Atomically write ``embedder.pt``: format, kind, config, identity, state_dict (+ plain ``extra``)."""
    payload = {"format": FORMAT, "kind": KIND, "config": plain(asdict(model.config)),
               "identity": plain(identity or {}),
               "state_dict": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
               **{k: plain(v) for k, v in extra.items()}}
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def read_payload(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The checkpoint's payload when it loads with ``weights_only=True``, else None."""
    try:
        payload = load_pt(path, "embedder checkpoint")
    except EdgedistalError:  # pickled extras (older detector checkpoints) or not a torch file
        return None
    return payload if isinstance(payload, dict) else None


def is_embedder_checkpoint(path: str | os.PathLike[str]) -> bool:
    payload = read_payload(path)
    return payload is not None and payload.get("kind") == KIND


def load_embedder(path: str | os.PathLike[str]) -> tuple[Embedder, dict[str, Any]]:
    """``(embedder in eval mode, payload)`` from an ``embedder.pt``; one-line errors otherwise."""
    path = Path(path)
    fix = "pass an embedder.pt written by `edgedistal pretrain`"
    if not path.exists():
        raise EdgedistalError(f"{path}: embedder checkpoint not found", fix)
    payload = read_payload(path)
    if payload is None or payload.get("kind") != KIND or "state_dict" not in payload:
        raise EdgedistalError(f"{path}: not an edgedistal embedder checkpoint", fix)
    config = DetectorConfig.from_dict(payload.get("config") or {})
    model = Embedder(config)
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise EdgedistalError(f"{path}: weights do not match its config (backbone {config.backbone!r})", fix) from exc
    model.eval()
    return model, payload


def load_model(path: str | os.PathLike[str]) -> tuple[Detector | Embedder, dict[str, Any]]:
    """A detector or an embedder checkpoint, by its kind (what `score`, `export` and `distill` load)."""
    if is_embedder_checkpoint(path):
        return load_embedder(path)
    from edgedistal.models.registry import load_checkpoint

    return load_checkpoint(path)


def init_from_embedder(detector: nn.Module, path: str | os.PathLike[str]) -> dict[str, Any]:
    """Copy an embedder's backbone into ``detector`` (same architecture required); returns what
    was loaded (for logs and fingerprints). The detector's head stays freshly initialised."""
    emb, payload = load_embedder(path)
    if emb.config.backbone != detector.config.backbone:  # type: ignore[union-attr]
        raise EdgedistalError(
            f"{path}: embedder backbone {emb.config.backbone!r} differs from the detector's "
            f"{detector.config.backbone!r}",  # type: ignore[union-attr]
            f"train the detector with --backbone {emb.config.backbone}, or pretrain that backbone",
        )
    try:
        detector.backbone.load_state_dict(emb.backbone.state_dict())  # type: ignore[union-attr]
    except RuntimeError as exc:
        raise EdgedistalError(f"{path}: embedder weights do not fit the detector's backbone",
                              "pretrain the same timm architecture") from exc
    return {"init": str(path), "weights_sha256": (payload.get("identity") or {}).get("weights_sha256")}


def check_init(path: str | os.PathLike[str] | None, backbone: str) -> None:
    """Refuse, before any training, an ``--init`` that is not an embedder of ``backbone``."""
    if not path:
        return
    emb, _ = load_embedder(path)
    if emb.config.backbone != backbone:
        raise EdgedistalError(f"{path}: embedder backbone {emb.config.backbone!r} differs from --backbone {backbone!r}",
                              f"pass --backbone {emb.config.backbone}, or pretrain a {backbone} embedder")
