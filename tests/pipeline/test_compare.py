"""compare.py helpers that need no training: the selection-cost bill of a distillation folder."""

import json
import math

import pandas as pd

from edgedistal.pipeline.compare import selection_cost


def test_selection_cost_reads_the_labelled_proxy_cost_else_the_rounds(tmp_path):
    lab = tmp_path / "lab"
    lab.mkdir()
    (lab / "config.json").write_text(json.dumps({"mode": "labelled", "cost": {"wall_s": 600.0, "select_s": 2.5,
                                                                              "images_trained": 1000}}))
    assert selection_cost(lab) == {"mode": "labelled", "selection_s": 602.5, "images_trained": 1000,
                                   "source": "config.json cost"}
    al = tmp_path / "al"
    al.mkdir()
    (al / "config.json").write_text(json.dumps({"mode": "proxy"}))
    pd.DataFrame({"round": [0, 1, 2], "seconds": [0.5, 100.0, None]}).to_csv(al / "rounds.csv", index=False)
    assert selection_cost(al)["selection_s"] == 100.5
    assert math.isnan(selection_cost(tmp_path / "missing")["selection_s"])
