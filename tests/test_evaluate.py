"""gfd.evaluate against hand computations."""
import json
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from gfd.evaluate import aggregate_runs, confusion_matrix, evaluate_model, evaluate_predictions, flatten_metrics
from gfd.report import format_cell, results_table

CLASSES = ["real", "ganA", "ganB"]
Y_TRUE = [0, 0, 1, 1, 2, 2, 2]
Y_PRED = [0, 1, 1, 1, 2, 0, 2]


class Bundle:
    """The part of gfd.data.DataBundle that evaluate_model reads."""

    def __init__(self, loaders, classes=CLASSES):
        self.loaders, self.classes, self.root = loaders, list(classes), "memory"

    def __getitem__(self, split):
        return self.loaders[split]


def loader(labels, batch_size=3):
    y = torch.tensor(labels)
    x = y.view(-1, 1, 1, 1).float().expand(-1, 3, 4, 4).clone()  # the label is written in the image
    return DataLoader(TensorDataset(x, y), batch_size=batch_size)


def test_confusion_matrix_by_hand():
    cm = confusion_matrix(Y_TRUE, Y_PRED, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 2]]


def test_evaluate_predictions_labels_and_scores_agree():
    r = evaluate_predictions(Y_TRUE, Y_PRED, CLASSES)
    assert r["acc"] == pytest.approx(5 / 7)
    assert r["per_class_acc"] == pytest.approx({"real": 0.5, "ganA": 1.0, "ganB": 2 / 3})
    assert r["n"] == 7
    scores = torch.nn.functional.one_hot(torch.tensor(Y_PRED), 3).float() * 3 - 1  # logits
    assert evaluate_predictions(torch.tensor(Y_TRUE), scores, CLASSES) == r


def test_class_without_test_images_has_no_accuracy():
    r = evaluate_predictions([0, 0, 1], [0, 1, 1], CLASSES)
    assert r["per_class_acc"]["ganB"] is None
    assert r["confusion"][2] == [0, 0, 0]


def test_bad_labels_raise_clear_errors():
    with pytest.raises(ValueError, match="outside 0..2"):
        evaluate_predictions([0, 3], [0, 1], CLASSES)
    with pytest.raises(ValueError, match="2 labels but y_pred has 3"):
        evaluate_predictions([0, 1], [0, 1, 1], CLASSES)
    with pytest.raises(ValueError, match="empty"):
        evaluate_predictions([], [], CLASSES)


def test_evaluate_model_worlds_and_skips_missing_open_split():
    # predicts the label written in the image, except that it calls every "ganB" image "real"
    def predict_fn(x):
        y = x[:, 0, 0, 0].long()
        y = torch.where(y == 2, torch.zeros_like(y), y)
        return nn.functional.one_hot(y, 3).float()

    bundle = Bundle({"test_closed": loader(Y_TRUE), "test_open": loader([2, 2, 1, 0])})
    res = evaluate_model(predict_fn, bundle)
    assert set(res) == {"test_closed", "test_open"}
    assert res["test_closed"]["world"] == "closed" and res["test_open"]["world"] == "open"
    assert res["test_closed"]["acc"] == pytest.approx(4 / 7)
    assert res["test_open"]["acc"] == pytest.approx(2 / 4)
    assert res["test_closed"]["confusion"] == [[2, 0, 0], [0, 2, 0], [3, 0, 0]]
    assert flatten_metrics(res) == pytest.approx({"closed": 4 / 7, "open": 0.5})

    closed_only = evaluate_model(predict_fn, Bundle({"test_closed": loader(Y_TRUE)}))
    assert set(closed_only) == {"test_closed"}
    with pytest.raises(KeyError, match="available"):
        evaluate_model(predict_fn, Bundle({"test_closed": loader(Y_TRUE)}), splits=("val",))


def test_evaluate_model_uses_eval_mode_and_checks_class_count():
    model = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(48, 3))
    model.train()
    bundle = Bundle({"test_closed": loader(Y_TRUE)})
    a = evaluate_model(model, bundle)["test_closed"]["confusion"]
    b = evaluate_model(model, bundle)["test_closed"]["confusion"]
    assert a == b               # dropout off during evaluation: deterministic
    assert model.training       # and the mode is restored
    x = torch.tensor(Y_TRUE).view(-1, 1, 1, 1).float().expand(-1, 3, 4, 4)
    with torch.no_grad():
        by_hand = nn.Linear(48, 3)
        by_hand.load_state_dict(model[2].state_dict())
        pred = by_hand(x.flatten(1)).argmax(1)          # the network without dropout, by hand
    assert a == confusion_matrix(Y_TRUE, pred, 3).tolist()
    with pytest.raises(ValueError, match="scores 2 classes but the dataset has 3"):
        evaluate_model(nn.Sequential(nn.Flatten(), nn.Linear(48, 2)), bundle)


def test_aggregate_runs_mean_and_sample_std():
    runs = {0: {"closed": 0.8, "open": 0.3}, 1: {"closed": 0.9, "open": 0.5}, 2: {"closed": 1.0}}
    agg = aggregate_runs(runs)
    assert agg["closed"]["mean"] == pytest.approx(0.9)
    assert agg["closed"]["std"] == pytest.approx(0.1)              # sqrt(((-.1)^2 + 0 + .1^2) / 2)
    assert agg["closed"]["n"] == 3 and agg["closed"]["values"] == [0.8, 0.9, 1.0]
    assert agg["open"]["mean"] == pytest.approx(0.4) and agg["open"]["n"] == 2
    assert agg["open"]["std"] == pytest.approx(math.sqrt(0.02))
    assert math.isnan(aggregate_runs([{"closed": 0.7}])["closed"]["std"])
    with pytest.raises(ValueError):
        aggregate_runs([])


def test_aggregate_runs_of_evaluate_results_per_class():
    r1 = {"test_closed": dict(evaluate_predictions(Y_TRUE, Y_PRED, CLASSES), world="closed")}
    r2 = {"test_closed": dict(evaluate_predictions(Y_TRUE, Y_TRUE, CLASSES), world="closed")}
    agg = aggregate_runs([r1, r2], per_class=True)
    assert agg["closed"]["mean"] == pytest.approx((5 / 7 + 1) / 2)
    assert agg["closed/real"]["mean"] == pytest.approx(0.75)
    assert agg["closed/ganB"]["values"] == pytest.approx([2 / 3, 1.0])


def test_format_cell():
    assert format_cell({"mean": 0.9, "std": 0.1, "n": 3}) == "90.00 ± 10.00 (3 seeds)"
    assert format_cell({"mean": 0.75, "std": float("nan"), "n": 1}, digits=1) == "75.0 (1 seed)"
    assert format_cell({"mean": 0.5, "std": 0.0, "n": 2}, percent=False) == "0.50 ± 0.00 (2 seeds)"
    assert format_cell(None) == "–"


def test_results_table_markdown_and_json(tmp_path):
    rows = {
        "DCT": [{"closed": 0.8, "open": 0.3}, {"closed": 0.9, "open": 0.5}, {"closed": 1.0, "open": 0.4}],
        "AttNet": {7: {"closed": 0.95}},
    }
    md = results_table(rows, tmp_path / "t.md", tmp_path / "t.json")
    lines = md.strip().splitlines()
    assert lines[0] == "| Method | closed (%) | open (%) |"
    assert lines[2] == "| DCT | 90.00 ± 10.00 (3 seeds) | 40.00 ± 10.00 (3 seeds) |"
    assert lines[3] == "| AttNet | 95.00 (1 seed) | – |"
    assert (tmp_path / "t.md").read_text() == md

    data = json.loads((tmp_path / "t.json").read_text())
    dct, att = data["rows"]
    assert dct["method"] == "DCT" and dct["seeds"] == [0, 1, 2]
    assert [r["open"] for r in dct["per_seed"]] == [0.3, 0.5, 0.4]
    assert dct["summary"]["closed"]["mean"] == pytest.approx(0.9)
    assert att["seeds"] == [7] and att["summary"]["closed"]["std"] is None  # NaN -> null


def test_results_table_from_evaluate_model_results(tmp_path):
    def perfect(x):
        return nn.functional.one_hot(x[:, 0, 0, 0].long(), 3).float()

    bundle = Bundle({"test_closed": loader(Y_TRUE), "test_open": loader([0, 1, 2])})
    runs = [evaluate_model(perfect, bundle) for _ in range(2)]
    md = results_table({"oracle": runs}, path_json=tmp_path / "r.json")
    assert "| oracle | 100.00 ± 0.00 (2 seeds) | 100.00 ± 0.00 (2 seeds) |" in md
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["rows"][0]["per_seed_confusion"][0]["test_open"] == np.eye(3, dtype=int).tolist()
