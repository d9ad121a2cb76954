"""`edgedistal pretrain`: SimCLR on the train images only, label-free, resumable, plain checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from cli_run import exit_code as run

from edgedistal.data.manifest import Manifest

SIZE = 32


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory, synth_dir: Path) -> Path:
    from edgedistal.data.split import group_split

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("pretrain")
    meta = pd.read_csv(synth_dir / "metadata.csv")
    recs = [{"path": str(synth_dir / r.path), "label": int(r.label == "FAKE"), "group": r.group,
             "video": r.video, "frame": int(r.frame)} for r in meta.itertuples()]
    m = group_split(Manifest.from_records(recs), (0.6, 0.2, 0.2), seed=0)
    m.save(root / "manifest.parquet")
    return root / "manifest.parquet"


def _cfg(**kw):
    from edgedistal.models.pretrain import PretrainConfig

    base = dict(backbone="resnet10t", image_size=SIZE, batch_size=8, max_steps=3, device="cpu", amp="off", seed=0)
    return PretrainConfig(**{**base, **kw})


def test_nt_xent_prefers_matching_views() -> None:
    from edgedistal.models.pretrain import nt_xent

    z = torch.randn(8, 16)
    matched = nt_xent(z, z + 0.01 * torch.randn(8, 16), 0.2)
    shuffled = nt_xent(z, z[torch.randperm(8)] + 0.01 * torch.randn(8, 16), 0.2)
    assert matched < shuffled
    assert matched < np.log(15)  # below chance (uniform over the 2B-1 others)


def test_cli_pretrain_writes_a_plain_checkpoint_and_report(manifest: Path, tmp_path: Path) -> None:
    from edgedistal.models.embedder import load_embedder

    out = tmp_path / "emb"
    assert run("pretrain", "-m", manifest, "-o", out, "--backbone", "resnet10t", "--image-size", SIZE,
               "--steps", 3, "--batch-size", 8, "--device", "cpu", "--threads", 1, "--amp", "off") == 0
    payload = torch.load(out / "embedder.pt", map_location="cpu", weights_only=True)  # no pickled classes
    assert payload["kind"] == "embedder" and payload["config"]["backbone"] == "resnet10t"
    assert payload["identity"]["weights_sha256"]
    model, _ = load_embedder(out / "embedder.pt")
    _, emb = model(torch.zeros(2, 3, SIZE, SIZE))
    assert torch.allclose(emb.norm(dim=1), torch.ones(2), atol=1e-5)
    report = (out / "report.md").read_text()
    assert "Label-free quality" in report and "linear-probe val AUC" in report
    assert (out / "loss.png").exists() and not (out / "pretrain_state.pt").exists()


def test_shuffled_labels_give_identical_weights(manifest: Path, tmp_path: Path) -> None:
    from edgedistal.pipeline.pretrain import pretrain_on_manifest

    m = Manifest.load(manifest)
    df = m.df.copy()
    df["label"] = np.random.default_rng(1).permutation(df["label"].to_numpy())
    shuffled = Manifest(df)
    assert not np.array_equal(shuffled.labels, m.labels)
    a = pretrain_on_manifest(m, _cfg(), tmp_path / "a", progress=False, diagnose=False)
    b = pretrain_on_manifest(shuffled, _cfg(), tmp_path / "b", progress=False, diagnose=False)
    sa = torch.load(a["checkpoint"], weights_only=True)["state_dict"]
    sb = torch.load(b["checkpoint"], weights_only=True)["state_dict"]
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


class _Flaky(np.ndarray):
    """An image array whose 3rd batch read fails: an interruption in the middle of the run."""

    reads = 0

    def __getitem__(self, idx):
        if isinstance(idx, np.ndarray):
            type(self).reads += 1
            if type(self).reads == 3:
                raise KeyboardInterrupt
        return np.asarray(super().__getitem__(idx))


def test_resume_continues_to_the_same_weights(tmp_path: Path) -> None:
    from edgedistal.errors import EdgedistalError
    from edgedistal.models.pretrain import pretrain

    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (24, SIZE, SIZE, 3), dtype=np.uint8)
    cfg = _cfg(max_steps=4, save_every_s=0.0)
    full = pretrain(images, cfg, progress=False)
    state = tmp_path / "state.pt"
    with pytest.raises(KeyboardInterrupt):
        pretrain(images.view(_Flaky), cfg, state_path=state, progress=False)
    assert torch.load(state, weights_only=True)["step"] == 2
    resumed = pretrain(images, cfg, state_path=state, resume=True, progress=False)
    assert resumed.steps == 4
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(EdgedistalError, match="another run"):
        pretrain(images, _cfg(max_steps=4, lr=0.5), state_path=state, resume=True, progress=False)


def test_bad_input_is_one_line(manifest: Path, tmp_path: Path, capsys) -> None:
    code = run("pretrain", "-m", manifest, "-o", tmp_path / "x", "--backbone", "no_such_net", "--image-size", SIZE,
               "--steps", 1, "--device", "cpu", "--no-diagnostics")
    err = capsys.readouterr().err
    assert code == 2 and "error:" in err and "Traceback" not in err
