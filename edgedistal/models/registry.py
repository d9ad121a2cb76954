"""Detectors built from any timm backbone: one forward gives a fake logit and an embedding.

The embedding (L2-normalised pooled features, optionally projected) feeds the diversity half of
acquisition; the logit feeds uncertainty. Checkpoints carry their :class:`DetectorConfig`, so
export, scoring and evaluation never need the training command line again.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from edgedistal.errors import EdgedistalError
from edgedistal.utils.io import atomic_path
from edgedistal.utils.safeload import load_pt, plain

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Backbones the project documents and tests; any other timm name works too.
KNOWN_BACKBONES = ("resnet18", "efficientnet_b0", "mobilenetv3_large_100", "mobilenetv3_small_100")


@dataclass
class DetectorConfig:
    backbone: str = "resnet18"
    image_size: int = 128
    embed_dim: int | None = None  # None: the backbone's pooled feature size
    drop_rate: float = 0.0
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DetectorConfig:
        d = dict(d)
        d["mean"] = tuple(d.get("mean", IMAGENET_MEAN))
        d["std"] = tuple(d.get("std", IMAGENET_STD))
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


class Detector(nn.Module):
    """timm backbone → pooled features → (fake logit [N], L2-normalised embedding [N, D]).

    Input: float NCHW, already normalised with ``config.mean``/``config.std``.
    """

    def __init__(self, config: DetectorConfig, pretrained: bool = False):
        super().__init__()
        import timm

        self.config = config
        try:
            self.backbone = timm.create_model(
                config.backbone, pretrained=pretrained, num_classes=0, drop_rate=config.drop_rate
            )
        except RuntimeError as exc:  # timm raises RuntimeError for unknown names
            raise EdgedistalError(
                f"unknown backbone {config.backbone!r} ({exc})",
                f"use a timm model name, e.g. one of {', '.join(KNOWN_BACKBONES)}",
            ) from exc
        # pooled output size: models with a pre-logits layer (MobileNetV3) emit head_hidden_size
        feat = getattr(self.backbone, "head_hidden_size", None) or self.backbone.num_features
        self.proj = nn.Linear(feat, config.embed_dim) if config.embed_dim else nn.Identity()
        self.embed_dim = config.embed_dim or feat
        self.dropout = nn.Dropout(config.drop_rate)
        self.head = nn.Linear(feat, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x)
        logit = self.head(self.dropout(f)).squeeze(1)
        emb = F.normalize(self.proj(f).float(), dim=1)
        return logit, emb


class DeployModel(nn.Module):
    """What gets exported and served: uint8 NHWC RGB in → (fake probability, embedding) out.

    Normalisation lives inside the graph so every backend (torch, ORT, TensorRT) takes the same
    raw bytes the image cache holds, and the preprocessing runs on the accelerator.
    """

    def __init__(self, detector: Detector):
        super().__init__()
        self.detector = detector
        cfg = detector.config
        mean = torch.tensor(cfg.mean).view(1, 3, 1, 1) * 255.0
        std = torch.tensor(cfg.std).view(1, 3, 1, 1) * 255.0
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("inv_std", 1.0 / std, persistent=False)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = images.permute(0, 3, 1, 2).to(self.mean.dtype)
        x = (x - self.mean) * self.inv_std
        logit, emb = self.detector(x)
        if getattr(self.detector, "kind", None) == "embedder":  # no head: its NaN slot passes as is
            return logit.float(), emb.float()
        return torch.sigmoid(logit.float()), emb.float()


def normalise_uint8(images: torch.Tensor, config: DetectorConfig) -> torch.Tensor:
    """uint8 NHWC → float NCHW normalised (for training loops that batch on the host)."""
    x = images.permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(config.mean, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(config.std, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def check_backbone(name: str) -> None:
    """Refuse a backbone timm does not have, before anything is written (no model is built)."""
    import timm

    if not timm.is_model(name):
        raise EdgedistalError(f"unknown backbone {name!r}",
                              f"use a timm model name, e.g. one of {', '.join(KNOWN_BACKBONES)}")


def build_detector(
    config: DetectorConfig, weights: str | os.PathLike[str] | None = None, pretrained: bool = False
) -> Detector:
    """Build a detector; ``weights`` loads a local timm/torchvision backbone state dict (no download)."""
    model = Detector(config, pretrained=pretrained)
    if weights:
        load_backbone_weights(model, weights)
    return model


def load_backbone_weights(model: Detector, path: str | os.PathLike[str]) -> None:
    """Load a local backbone state dict, ignoring classifier keys; fail clearly on mismatch."""
    path = Path(path)
    if not path.exists():
        raise EdgedistalError(f"{path}: weights file not found", "pass a local .pth/.pt/.safetensors file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = load_pt(path, "weights file")
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    classifier = {"fc.weight", "fc.bias", "classifier.weight", "classifier.bias", "head.weight", "head.bias", "head.fc.weight", "head.fc.bias"}
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise EdgedistalError(f"{path}: not a state dict (name → tensor)",
                              "pass a local .pth/.pt/.safetensors file of backbone weights")
    state = {k.removeprefix("module."): v for k, v in state.items() if k.removeprefix("module.") not in classifier}
    try:
        missing, unexpected = model.backbone.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # strict=False still raises on shape mismatches
        raise EdgedistalError(
            f"{path}: weights do not match backbone {model.config.backbone!r} (shape mismatch)",
            "pass weights saved from the same timm/torchvision architecture",
        ) from exc
    if len(missing) > len(state) // 2 or (unexpected and len(unexpected) > len(state) // 2):
        raise EdgedistalError(
            f"{path}: weights do not match backbone {model.config.backbone!r} "
            f"({len(missing)} missing, {len(unexpected)} unexpected keys)",
            "pass weights saved from the same timm/torchvision architecture",
        )


def save_checkpoint(path: str | os.PathLike[str], model: Detector, **extra: Any) -> Path:
    """Atomically write weights + config (+ anything in ``extra``, e.g. metrics, history)."""
    payload = plain({"config": asdict(model.config), "state_dict": model.state_dict(), **extra})
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> tuple[Detector, dict[str, Any]]:
    """Return ``(detector in eval mode, full payload)``; the config comes from the checkpoint.

    Read with ``weights_only=True`` (:func:`~edgedistal.utils.safeload.load_pt`): a crafted file
    cannot run code here."""
    path = Path(path)
    if not path.exists():
        raise EdgedistalError(f"{path}: checkpoint not found", "train one with `edgedistal train`")
    payload = load_pt(path, "checkpoint", map_location)
    try:
        config = DetectorConfig.from_dict(payload["config"])
        state = payload["state_dict"]
        if not isinstance(state, dict):
            raise TypeError(f"its state_dict is a {type(state).__name__}, not a dict")
    except Exception as exc:
        detail = f"no {exc} entry" if isinstance(exc, KeyError) else f"{exc.__class__.__name__}: {exc}"
        raise EdgedistalError(
            f"{path}: not an edgedistal checkpoint ({detail})",
            "pass a .pt written by `edgedistal train` (use --weights for plain backbone state dicts)",
        ) from exc
    try:
        model = Detector(config)
    except (TypeError, ValueError, AttributeError, RuntimeError) as exc:  # a config edited by hand
        raise EdgedistalError(f"{path}: its config cannot build a detector ({exc.__class__.__name__}: "
                              f"{str(exc)[:160]})", "re-train it, or restore the original checkpoint") from exc
    except EdgedistalError as exc:
        raise EdgedistalError(f"{path}: {exc}", "the checkpoint's config names a backbone timm does not have; "
                              "re-train it, or install the timm version it was trained with") from exc
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:  # missing/unexpected keys or shapes: config and weights disagree
        first = str(exc).splitlines()[1].strip() if "\n" in str(exc) else str(exc)
        raise EdgedistalError(
            f"{path}: weights do not match its config (backbone {config.backbone!r}, "
            f"image size {config.image_size}): {first[:160]}",
            "the config was edited or comes from another model; re-train, or restore the original checkpoint",
        ) from exc
    model.eval()
    return model, payload
