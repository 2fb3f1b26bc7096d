"""Notebook 05's loss-toggle panel, built and clicked headless (no browser, no training)."""
import pytest

from gfd.config import get_config
from gfd.paper import ablation_name
from gfd.runs.variant import RunResult, describe_changes
from gfd.widgets import ablation_panel

PNG = b"\x89PNG\r\n\x1a\n"
BASE = get_config("quick")


def fake_result(cfg, acc=0.6):
    splits = {"val": {"acc": acc}, "test_closed": {"acc": acc}, "test_open": {"acc": acc / 2}}
    return RunResult(ablation_name(cfg), cfg, None, splits, "none", 1.0)


class Recorder:
    """A stand-in for ``train_and_measure``: records each config it is asked to run."""

    def __init__(self, fail=False):
        self.calls, self.fail = [], fail

    def __call__(self, cfg):
        self.calls.append(cfg)
        if self.fail:
            raise RuntimeError("no data here")
        return fake_result(cfg, 0.7)


@pytest.fixture
def given():
    return [fake_result(BASE.with_(use_D=False, use_C=False, use_percept=False), 0.5), fake_result(BASE, 0.8)]


def test_building_trains_nothing_and_shows_the_given_results(given):
    run = Recorder()
    panel = ablation_panel(BASE, run, results=given, chance=0.2)
    assert run.calls == []
    assert bytes(panel.image.value).startswith(PNG)
    assert panel.labels == ["no D, no C, no L_percept", "quick preset"]
    assert panel.table.value.count("<tr class='gfd-run'") == 2
    assert not panel.button.disabled


def test_building_without_results_shows_an_empty_panel():
    run = Recorder()
    panel = ablation_panel(BASE, run)
    assert run.calls == [] and bytes(panel.image.value) == b"" and panel.labels == []


def test_a_click_runs_the_toggled_config_and_updates_the_widgets(given):
    run = Recorder()
    panel = ablation_panel(BASE, run, results=given, chance=0.2)
    before = bytes(panel.image.value)
    panel.toggles["use_D"].value = False
    panel.weights["w2"].value = 0.01
    panel.steps.value = 7
    panel.button.click()
    assert run.calls == [BASE.with_(use_D=False, w2=0.01, steps=7)]
    after = bytes(panel.image.value)
    assert after.startswith(PNG) and after != before
    label = "w2=0.01, no D, steps=7"
    assert panel.labels[-1] == label
    assert label in panel.table.value and label in panel.status.value
    assert panel.table.value.count("<tr class='gfd-run'") == 3
    assert not panel.button.disabled and not panel.busy


def test_a_failed_run_is_shown_in_the_panel_and_the_button_works_again(given):
    run = Recorder(fail=True)
    panel = ablation_panel(BASE, run, results=given)
    panel.toggles["use_C"].value = False
    panel.button.click()  # the exception must not escape into the kernel's comm handler
    assert len(run.calls) == 1 and len(panel.results) == 2
    assert "no C failed" in panel.status.value and "no data here" in panel.status.value
    assert not panel.button.disabled


def test_a_click_while_training_is_ignored(given):
    run = Recorder()
    panel = ablation_panel(BASE, run, results=given)
    panel.busy = True
    panel.button.click()
    assert run.calls == []


def test_labels_name_every_field_that_differs_from_the_preset():
    assert describe_changes(BASE, BASE) == "quick preset"
    assert describe_changes(BASE.with_(w2=0.01), BASE) == "w2=0.01"
    assert describe_changes(BASE.with_(w3=0.5), BASE) == "w3=0.5"
    assert describe_changes(BASE.with_(w1=5.0), BASE) == "w1=5"
    assert describe_changes(BASE.with_(use_percept=False, seed=3), BASE) == "no L_percept, seed=3"
    g_only = BASE.with_(use_D=False, use_C=False, use_percept=False)
    assert describe_changes(BASE, g_only) == "with D, with C, with L_percept"
    assert fake_result(BASE.with_(w1=0.1 + 0.2)).label(BASE) == "w1=0.30000000000000004"  # never rounded together
    variants = [BASE.with_(w2=0.01), BASE.with_(w3=0.5), BASE.with_(w1=5.0), BASE]
    assert len({describe_changes(c, BASE) for c in variants}) == len(variants)


def test_static_copy_for_viewers_without_a_kernel(given):
    panel = ablation_panel(BASE, Recorder(), results=given, chance=0.2)
    bundle = panel._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert "data:image/png;base64," in bundle["text/html"] and "gfd-runs" in bundle["text/html"]
    assert not bundle["text/plain"].startswith("VBox(") and "no D, no C, no L_percept" in bundle["text/plain"]
