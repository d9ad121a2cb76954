"""Detector training, prediction, augmentation and checkpoints on generated data (CPU, small)."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch

from edgedistal.data.synth import SynthConfig, generate
from edgedistal.errors import EdgedistalError
from edgedistal.models.augment import AugmentSpec, BatchAugment, spec_for
from edgedistal.models.metrics import binary_metrics
from edgedistal.models.registry import (
    DetectorConfig,
    build_detector,
    load_checkpoint,
    normalise_uint8,
)
from edgedistal.models.train import TrainConfig, fit, resolve_device
from edgedistal.models.train import predict as _predict

# Pinned to the CPU: bit-exact reproducibility checks do not hold under cuDNN autotuning / TF32.
predict = partial(_predict, device="cpu")

torch.set_num_threads(1)


def _synth(size: int, n_groups: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    imgs, tab = generate(SynthConfig(n_groups=n_groups, fakes_per_real=1, frames_per_video=6, size=size, seed=seed))
    groups = tab["group"].str[2:].astype(int).to_numpy()
    return np.ascontiguousarray(imgs[..., ::-1]), tab["label"].to_numpy(), groups


@pytest.fixture(scope="module")
def small():
    """40 tiny images: enough to exercise every code path in a couple of seconds."""
    x, y, g = _synth(32, 8)
    return x[g < 6], y[g < 6], x[g >= 6], y[g >= 6]


TINY = dict(backbone="resnet10t", image_size=32, batch_size=16, max_steps=6, eval_every=3, num_threads=1,
            device="cpu")


def test_training_is_reproducible_with_a_seed(small):
    tx, ty, vx, vy = small
    cfg = TrainConfig(**TINY, augment="standard", seed=7)
    a = fit(tx, ty, vx, vy, cfg, progress=False)
    b = fit(tx, ty, vx, vy, cfg, progress=False)
    assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]
    pa, ea = predict(a.model, vx)
    pb, eb = predict(b.model, vx)
    np.testing.assert_array_equal(pa, pb)
    np.testing.assert_array_equal(ea, eb)
    c = fit(tx, ty, vx, vy, TrainConfig(**TINY, augment="standard", seed=8), progress=False)
    assert [h["train_loss"] for h in c.history] != [h["train_loss"] for h in a.history]
    assert a.steps == 6 and a.samples_seen == 6 * 16 and len(a.history) == 2


def test_on_step_sees_every_step_in_train_mode_and_changes_nothing(small):
    """The per-step hook (how training dynamics record logits) is called once per step with the
    model in train mode, and a hook that only reads leaves the run bit-identical."""
    tx, ty, vx, vy = small
    cfg = TrainConfig(**TINY, augment="light", seed=3, amp="off")
    seen: list[tuple[int, bool]] = []
    hooked = fit(tx, ty, vx, vy, cfg, progress=False,
                 on_step=lambda step, model: seen.append((step, model.training)))
    plain = fit(tx, ty, vx, vy, cfg, progress=False)
    assert seen == [(s, True) for s in range(1, 7)]
    np.testing.assert_array_equal(predict(hooked.model, vx)[0], predict(plain.model, vx)[0])


def test_training_beats_chance_on_held_out_groups():
    x, y, g = _synth(32, 32)
    tr, te = g < 24, g >= 24  # whole identities held out
    vmask = tr & (g >= 20)
    cfg = TrainConfig(backbone="resnet10t", image_size=32, batch_size=32, max_steps=90, eval_every=30,
                      lr=3e-3, augment="light", patience=0, num_threads=1, device="cpu", amp="off")
    res = fit(x[tr & ~vmask], y[tr & ~vmask], x[vmask], y[vmask], cfg, progress=False)
    p, emb = predict(res.model, x[te])
    assert binary_metrics(y[te], p)["auc"] > 0.7
    assert emb.shape == (te.sum(), res.model.embed_dim)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-4)
    # the best evaluation's weights are the ones returned
    best = max(h["val_auc"] for h in res.history)
    assert res.best_val_auc == pytest.approx(best)
    # same batch size and precision as the validation pass (amp="off": `auto` picks bf16 on CPUs with
    # AVX-512 BF16, and a near-tie in 128 val probabilities then ranks differently)
    pv, _ = predict(res.model, x[vmask], batch_size=cfg.batch_size)
    assert binary_metrics(y[vmask], pv)["auc"] == pytest.approx(best, abs=1e-6)


def test_checkpoint_round_trip_gives_identical_predictions(small, tmp_path):
    tx, ty, vx, vy = small
    ck = tmp_path / "d.pt"
    res = fit(tx, ty, vx, vy, TrainConfig(**TINY, augment="none"), checkpoint=ck, progress=False)
    model, payload = load_checkpoint(ck)
    assert payload["train_config"]["backbone"] == "resnet10t"
    assert len(payload["history"]) == len(res.history)
    assert model.config.image_size == 32
    p1, e1 = predict(res.model, vx)
    p2, e2 = predict(model, vx)
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(e1, e2)


def test_weights_load_a_local_timm_state_dict(small, tmp_path):
    import timm

    src = timm.create_model("resnet10t", num_classes=5)
    with torch.no_grad():
        src.conv1[0].weight.fill_(0.0125)
    path = tmp_path / "r10t.pth"
    torch.save(src.state_dict(), path)
    tx, ty, _, _ = small
    cfg = TrainConfig(**{**TINY, "max_steps": 1, "eval_every": 0}, lr=1e-12, weights=str(path))
    res = fit(tx, ty, cfg=cfg, progress=False)
    w = res.model.backbone.conv1[0].weight
    assert torch.allclose(w, torch.full_like(w, 0.0125), atol=1e-6)
    wrong = tmp_path / "wrong.pth"
    torch.save(timm.create_model("mobilenetv3_small_050", num_classes=0).state_dict(), wrong)
    with pytest.raises(EdgedistalError, match="do not match"):
        fit(tx, ty, cfg=TrainConfig(**TINY, weights=str(wrong)), progress=False)


def test_predict_matches_the_float_path_and_checks_shapes(small):
    _, _, vx, _ = small
    model = build_detector(DetectorConfig(backbone="resnet10t", image_size=32)).eval()
    p, e = predict(model, vx, batch_size=7)
    with torch.no_grad():
        logit, emb = model(normalise_uint8(torch.from_numpy(vx), model.config))
    np.testing.assert_allclose(p, torch.sigmoid(logit).numpy(), atol=1e-5)
    np.testing.assert_allclose(e, emb.numpy(), atol=1e-5)
    with pytest.raises(EdgedistalError):
        predict(model, vx[..., 0])


def test_mc_dropout_gives_one_row_per_pass(small):
    _, _, vx, _ = small
    model = build_detector(DetectorConfig(backbone="resnet10t", image_size=32, drop_rate=0.5)).eval()
    probs, emb = predict(model, vx, mc_dropout=4)
    assert probs.shape == (4, len(vx))
    assert not np.allclose(probs[0], probs[1])
    p_det, e_det = predict(model, vx)
    np.testing.assert_allclose(emb, e_det, atol=1e-6)
    assert not model.dropout.training  # dropout switched back off


def test_augmentations_keep_range_and_shape():
    torch.manual_seed(0)
    x = torch.rand(6, 3, 32, 32)
    assert spec_for("none") is None
    y = BatchAugment(spec_for("standard"))(x.clone())
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    flip = BatchAugment(AugmentSpec(flip=1.0))(x.clone())
    torch.testing.assert_close(flip, x.flip(3))
    jpeg = BatchAugment(AugmentSpec(flip=0.0, jpeg=1.0, jpeg_quality=(30, 30)))(x.clone())
    assert not torch.equal(jpeg, x) and (jpeg - x).abs().mean() < 0.3
    blur = BatchAugment(AugmentSpec(flip=0.0, blur=1.0))(x.clone())
    assert blur.std() < x.std()  # smoothing noise lowers its variance
    with pytest.raises(ValueError):
        spec_for("heavy")


def test_bad_inputs_fail_clearly(small):
    tx, ty, _, _ = small
    with pytest.raises(EdgedistalError, match="uint8"):
        fit(tx.astype(np.float32), ty, cfg=TrainConfig(**TINY), progress=False)
    with pytest.raises(EdgedistalError, match="augment"):
        fit(tx, ty, cfg=TrainConfig(**TINY, augment="heavy"), progress=False)
    assert resolve_device("cpu").type == "cpu"


def test_interrupted_training_resumes_to_the_same_model(small, tmp_path, monkeypatch):
    import edgedistal.models.train as train_mod

    tx, ty, vx, vy = small
    cfg = TrainConfig(**TINY, augment="standard", seed=3)
    ref = fit(tx, ty, vx, vy, cfg, progress=False)
    state = tmp_path / "state.pt"
    real_metrics = train_mod.binary_metrics
    calls = {"n": 0}

    def crash_on_second_eval(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_metrics(*a, **k)

    monkeypatch.setattr(train_mod, "binary_metrics", crash_on_second_eval)
    with pytest.raises(KeyboardInterrupt):
        fit(tx, ty, vx, vy, cfg, progress=False, resume=state)
    monkeypatch.setattr(train_mod, "binary_metrics", real_metrics)
    assert state.exists()
    res = fit(tx, ty, vx, vy, cfg, progress=False, resume=state)
    assert res.steps == ref.steps and [h["step"] for h in res.history] == [3, 6]
    np.testing.assert_array_equal(predict(res.model, vx)[0], predict(ref.model, vx)[0])
    with pytest.raises(EdgedistalError, match="another run"):
        fit(tx, ty, vx, vy, TrainConfig(**{**TINY, "max_steps": 9}), progress=False, resume=state)
