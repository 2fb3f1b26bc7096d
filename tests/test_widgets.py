"""Notebook 05's loss-toggle panel and notebook 09's fingerprint explorer, built and used headless
(no browser, no training)."""
import io

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import warmed_generator

from gfd.config import get_config
from gfd.paper import ablation_name
from gfd.runs.variant import RunResult, describe_changes
from gfd.widgets import ablation_panel, fingerprint_explorer

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


# --------------------------------------------------------------------------------------------------
# notebook 09: the fingerprint explorer, on a tiny untrained G and a tiny data set
# --------------------------------------------------------------------------------------------------

CROP = 32


@pytest.fixture
def tiny_bundle(make_dataset):
    """real/ganA/ganB, 6 images per class and split, except ganB with 4 in test_open."""
    from gfd.data import get_loaders
    root = make_dataset(n=6)
    for name in ("004.png", "005.png"):
        (root / "test_open" / "ganB" / name).unlink()
    return get_loaders(root, get_config("course"), transform="mini", crop=CROP, batch_size=4, num_workers=0)


@pytest.fixture
def tiny_G():
    return warmed_generator(CROP)


def fingerprint_of(G, bundle, split, source, index):
    """G's fingerprint (eval mode) of the index-th image of ``source`` in ``split``, computed here."""
    ds = bundle.datasets[split]
    label = bundle.classes.index(source)
    i = [j for j, t in enumerate(ds.targets) if t == label][index]
    x, _ = ds[i]
    training = G.training
    G.eval()
    with torch.no_grad():
        f = G.fingerprint(x[None])[0]
    G.train(training)
    return x, f


def shown_fingerprint(explorer) -> np.ndarray:
    """The RGB array drawn in the explorer's "fingerprint f" panel."""
    ax = next(a for a in explorer.figure_.axes if a.get_title() == "fingerprint f")
    return np.asarray(ax.images[0].get_array(), dtype=np.float32)


def as_displayed(f: torch.Tensor) -> np.ndarray:
    """A fingerprint as the course's figures draw it: divided by its largest |value|, mapped to [0, 1]."""
    arr = f.numpy().transpose(1, 2, 0)
    return np.clip(arr / np.abs(arr).max() * 0.5 + 0.5, 0, 1)


def png_size(data) -> tuple[int, int]:
    return Image.open(io.BytesIO(bytes(data))).size


def test_explorer_builds_on_the_default_selection(tiny_G, tiny_bundle, one_thread):
    ex = fingerprint_explorer(tiny_G, tiny_bundle)
    v = ex.view
    assert (v.world, v.split, v.source, v.index, v.count) == ("closed", "test_closed", "ganA", 0, 6)
    assert bytes(ex.image.value).startswith(PNG) and min(png_size(ex.image.value)) > 100
    x, f = fingerprint_of(tiny_G, tiny_bundle, "test_closed", "ganA", 0)
    assert torch.equal(v.x, x)
    torch.testing.assert_close(v.f, f, atol=1e-6, rtol=1e-5)
    np.testing.assert_allclose(shown_fingerprint(ex), as_displayed(f), atol=1e-5)
    torch.testing.assert_close(v.x_fp, (v.x_real + f).clamp(-1, 1), atol=1e-6, rtol=1e-5)
    assert ex.source.options == ("real", "ganA", "ganB") and ex.index.max == 5
    assert "ganA" in ex.status.value and "image 0 of 6" in ex.status.value
    assert tiny_G.training  # G's own mode is left as it was


def test_the_dropdown_and_the_slider_redraw_the_chosen_image(tiny_G, tiny_bundle, one_thread):
    ex = fingerprint_explorer(tiny_G, tiny_bundle)
    shown = []
    ex.image.observe(lambda change: shown.append(bytes(change["new"])), names="value")
    first = bytes(ex.image.value)
    ex.source.value = "ganB"
    assert len(shown) == 1 and shown[-1] != first and shown[-1].startswith(PNG)
    _, f = fingerprint_of(tiny_G, tiny_bundle, "test_closed", "ganB", 0)
    assert ex.view.source == "ganB" and ex.view.label == 2
    torch.testing.assert_close(ex.view.f, f, atol=1e-6, rtol=1e-5)
    np.testing.assert_allclose(shown_fingerprint(ex), as_displayed(f), atol=1e-5)
    ex.index.value = 3
    assert len(shown) == 2 and shown[-1] != shown[-2]
    x, f = fingerprint_of(tiny_G, tiny_bundle, "test_closed", "ganB", 3)
    assert ex.view.index == 3 and torch.equal(ex.view.x, x) and ex.view.path.endswith("ganB/003.png")
    np.testing.assert_allclose(shown_fingerprint(ex), as_displayed(f), atol=1e-5)


def test_the_world_switch_uses_the_open_split_and_clamps_the_slider(tiny_G, tiny_bundle, one_thread):
    ex = fingerprint_explorer(tiny_G, tiny_bundle, source="ganB", index=5)
    shown = []
    ex.image.observe(lambda change: shown.append(bytes(change["new"])), names="value")
    ex.world.value = "open"  # ganB has 4 images there: index 5 becomes 3, drawn once
    assert len(shown) == 1 and ex.index.max == 3
    v = ex.view
    assert (v.world, v.split, v.index, v.count) == ("open", "test_open", 3, 4)
    x, f = fingerprint_of(tiny_G, tiny_bundle, "test_open", "ganB", 3)
    assert torch.equal(v.x, x) and "test_open" in v.path and "test_open" in v.real_path
    torch.testing.assert_close(v.f, f, atol=1e-6, rtol=1e-5)


def test_source_means_computed_once_and_equal_to_the_handed_in_ones(tiny_G, tiny_bundle, one_thread, monkeypatch):
    from gfd.analysis import fingerprints as fp
    calls = []
    real_extract = fp.extract_fingerprints
    monkeypatch.setattr(fp, "extract_fingerprints", lambda *a, **k: calls.append(1) or real_extract(*a, **k))
    ex = fingerprint_explorer(tiny_G, tiny_bundle)
    ex.index.value = 2
    ex.source.value = "real"
    ex.source.value = "ganA"
    assert len(calls) == 2  # ganA once, real once; one image per selection otherwise
    f_all, y_all = real_extract(tiny_G, tiny_bundle.datasets["test_closed"], progress=False)
    means = fp.mean_fingerprint_by_source(f_all, y_all, 3)
    torch.testing.assert_close(ex.view.mean, means[1], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(ex.view.spectrum, fp.log_spectrum(f_all[y_all == 1]).float(), atol=1e-5, rtol=1e-5)
    assert ex.view.n_mean == 6
    given = fingerprint_explorer(tiny_G, tiny_bundle, fingerprints={"closed": (f_all, y_all)})
    assert len(calls) == 2  # handed in: G runs on the shown image only
    torch.testing.assert_close(given.view.mean, means[1], atol=1e-6, rtol=1e-5)


def test_a_failed_selection_is_shown_and_the_controls_work_again(tiny_G, tiny_bundle, one_thread, monkeypatch):
    ex = fingerprint_explorer(tiny_G, tiny_bundle)
    before = bytes(ex.image.value)

    def broken(*args):
        raise RuntimeError("no such image here")
    monkeypatch.setattr(ex, "compute", broken)
    ex.source.value = "real"  # the exception must not escape into the kernel's comm handler
    assert "no such image here" in ex.status.value and bytes(ex.image.value) == before
    monkeypatch.undo()
    ex.source.value = "ganB"
    assert ex.view.source == "ganB" and bytes(ex.image.value) != before


def test_explorer_static_copy_for_viewers_without_a_kernel(tiny_G, tiny_bundle, one_thread):
    import base64
    ex = fingerprint_explorer(tiny_G, tiny_bundle)
    bundle = ex._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    page = bundle["text/html"]
    assert "gfd-explorer-static" in page and "ganA" in page
    assert f"data:image/png;base64,{base64.b64encode(bytes(ex.image.value)).decode()}" in page
    assert not bundle["text/plain"].startswith("VBox(") and "ganA image 0 of 6" in bundle["text/plain"]
    assert "test_closed/ganA/000.png" in bundle["text/plain"]
    assert str(tiny_bundle.root) not in bundle["text/plain"] + page  # no path of this machine in a stored file


def test_explorer_checks_its_arguments(tiny_G, tiny_bundle, one_thread):
    with pytest.raises(ValueError, match="unknown source"):
        fingerprint_explorer(tiny_G, tiny_bundle, source="ganZ")
    with pytest.raises(ValueError, match="unknown world"):
        fingerprint_explorer(tiny_G, tiny_bundle, world="elsewhere")
    with pytest.raises(ValueError, match="none of the splits"):
        fingerprint_explorer(tiny_G, tiny_bundle, worlds={"x": "no_such_split"})


def test_explorer_shows_the_glcm_vector_beside_the_source_mean_and_every_probability(tiny_G, tiny_bundle, one_thread):
    """The fingerprint explorer: the GLCM vector of this f (Sec. 4.5) beside the mean over the source's
    fingerprints, and G_enc + H's probability for every source."""
    from gfd import inference
    from gfd.analysis.glcm import glcm_features
    ex = fingerprint_explorer(tiny_G, tiny_bundle)
    v = ex.view
    x, f = fingerprint_of(tiny_G, tiny_bundle, "test_closed", "ganA", 0)
    np.testing.assert_allclose(v.glcm, glcm_features(f[None].numpy())[0], atol=1e-6)
    all_f = torch.stack([fingerprint_of(tiny_G, tiny_bundle, "test_closed", "ganA", i)[1] for i in range(6)])
    np.testing.assert_allclose(v.glcm_mean, glcm_features(all_f.numpy()).mean(0), atol=1e-5)
    probs = inference.attribute(tiny_G, x)[0]
    torch.testing.assert_close(v.probs, probs)
    for c, p in zip(v.classes, probs.tolist()):
        assert f"{c} {p:.1%}" in v.caption()
    glcm_ax = [a for a in ex.figure_.axes if a.get_title().startswith("GLCM")]
    assert len(glcm_ax) == 1 and np.allclose(glcm_ax[0].lines[0].get_ydata(), v.glcm)
    assert np.allclose(glcm_ax[0].lines[1].get_ydata(), v.glcm_mean)


# --------------------------------------------------------------------------------------------------
# notebook 05's panel while it trains: names, training time, progress bar, stop and resume
# --------------------------------------------------------------------------------------------------

def test_runs_are_named_by_their_table_4_row_and_other_combinations_are_flagged():
    from gfd.paper import ABLATIONS
    from gfd.widgets import NOT_A_ROW, table4_name
    for row, switches in ABLATIONS.items():
        assert table4_name(BASE.with_(**switches)) == row
    assert table4_name(BASE.with_(use_D=False)) == f"G+C+L_percept ({NOT_A_ROW})"
    assert table4_name(BASE.with_(use_C=False, use_percept=True)) == f"G+D+L_percept ({NOT_A_ROW})"
    panel = ablation_panel(BASE, Recorder(), results=[fake_result(BASE)])
    panel.toggles["use_D"].value = False
    panel.button.click()
    assert [row[2] for row in panel._rows()] == ["G+D+C+L_percept", "G+C+L_percept (not a Table 4 row)"]
    assert panel._numbered() == ["1: G+D+C+L_percept: quick preset",
                                 "2: G+C+L_percept (not a Table 4 row): no D"]
    assert "not a Table 4 row" in panel.status.value and "not a Table 4 row" in panel.table.value


def test_the_time_column_is_training_time_and_loaded_runs_say_cached():
    trained = fake_result(BASE)
    trained.train_seconds, trained.seconds = 95.4, 103.0   # seconds: loading and measuring included
    loaded = fake_result(BASE.with_(use_D=False))
    loaded.seconds = 9.0                                    # loaded, never trained here: train_seconds None
    panel = ablation_panel(BASE, Recorder(), results=[trained, loaded])
    assert panel.HEADER[-1] == "training time"
    assert [row[-1] for row in panel._rows()] == ["95 s", "cached"]
    assert "cached" in panel.table_text() and "103 s" not in panel.table_text()


@pytest.fixture
def measured(tiny_cfg, bundle, tmp_path, one_thread):
    """``run(cfg)`` = :func:`gfd.runs.train_and_measure` on the tiny data, runs kept under a temporary
    folder; ``measured.at(root)`` gives the same under another folder."""
    from gfd.runs.variant import train_and_measure

    def at(root):
        return lambda cfg: train_and_measure(cfg, bundle, runs_root=root)
    run = at(tmp_path / "runs")
    run.at, run.root = at, tmp_path / "runs"
    return run


def progress_seen(panel) -> list[int]:
    """Every value the panel's progress bar is given from now on."""
    seen = []
    panel.progress.observe(lambda change: seen.append(change["new"]), names="value")
    return seen


def test_the_progress_bar_follows_the_training_steps_and_the_time_is_training_time(tiny_cfg, measured):
    cfg = tiny_cfg.with_(steps=5)
    panel = ablation_panel(cfg, measured)
    panel.REFRESH = 0  # every step to the bar
    seen = progress_seen(panel)
    result = panel.train()
    assert [v for v in seen if v > 0] == [1, 2, 3, 4, 5] and panel.progress.max == 5
    assert "trained to step 5 of 5" in panel.progress_text.value
    secs = panel.seconds[-1]
    assert secs is not None and 0 < secs <= result.seconds and secs == result.train_seconds
    assert panel._rows()[-1][-1] == f"{secs:.0f} s"
    seen.clear()
    again = panel.train()  # the same settings: loaded from the run folder, nothing trained
    assert again.train_seconds is None and panel._rows()[-1][-1] == "cached"
    assert "cached" in panel.status.value and all(v in (0, 5) for v in seen)


def test_stop_ends_the_run_early_with_a_checkpoint_that_the_next_click_resumes(tiny_cfg, measured, tmp_path):
    cfg = tiny_cfg.with_(steps=6)
    panel = ablation_panel(cfg, measured)
    panel.REFRESH = 0
    seen = progress_seen(panel)

    def stop_at_2(change):  # what a reader does on seeing step 2: press stop
        if change["new"] == 2:
            panel.stop_button.click()
    panel.progress.observe(stop_at_2, names="value")
    assert panel.train() is None  # stopped: nothing measured, no row added
    panel.progress.unobserve(stop_at_2, names="value")
    assert panel.results == [] and not panel.busy and not panel.button.disabled and panel.stop_button.disabled
    assert "stopped" in panel.status.value and "at step 2 of 6" in panel.status.value
    assert panel.progress.value == 2 and panel.progress.bar_style == "warning"
    [run_dir] = [p for p in measured.root.iterdir() if p.name != "pretrained-C"]
    assert torch.load(run_dir / "checkpoint.pt", weights_only=False)["step"] == 2
    assert panel.stopped[cfg] >= 0

    seen.clear()
    result = panel.train()   # the next click on the same settings resumes at step 2
    assert [v for v in seen if v > 0] == [2, 3, 4, 5, 6]
    assert result.trainer.step == 6 and "done" in panel.status.value
    assert panel.seconds[-1] is not None and panel.seconds[-1] >= result.train_seconds
    assert cfg not in panel.stopped
    full = measured.at(tmp_path / "uninterrupted")(cfg)  # stopped and resumed = trained in one go
    for name in ("L_z", "L_adv_G", "L_cls_G", "L_percept", "L_cls_C", "L_adv_D", "lr"):
        assert result.trainer.history[name] == full.trainer.history[name], name
    assert result.val == full.val and result.open == full.open


def test_a_watched_run_is_bit_identical_to_an_unwatched_one(tiny_cfg, bundle, one_thread):
    from gfd.train import Trainer, watch_steps
    plain = Trainer(tiny_cfg, bundle)
    plain.fit(progress=False)
    steps = []
    watched = Trainer(tiny_cfg, bundle)
    with watch_steps(lambda step, total: steps.append((step, total))):
        watched.fit(progress=True)  # the watcher replaces the progress bars
    assert steps == [(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)]
    assert watched.history["L_G"] == plain.history["L_G"] and watched.history["L_DC"] == plain.history["L_DC"]
    assert all(torch.equal(a, b) for a, b in zip(watched.G.state_dict().values(), plain.G.state_dict().values()))
    assert watched.fit_seconds > 0 and Trainer(tiny_cfg, bundle).fit_seconds is None


def test_in_a_kernel_a_click_trains_in_a_thread_and_the_stop_click_is_handled_meanwhile(tiny_cfg, measured):
    """The kernel's view: the click handler returns at once, so a stop click (another comm message)
    is handled while the run trains; the run stops at the step it had reached."""
    import threading
    cfg = tiny_cfg.with_(steps=6)
    panel = ablation_panel(cfg, measured, background=True)
    panel.REFRESH = 0
    reached, release = threading.Event(), threading.Event()

    def hold_at_step_3(change):  # runs in the training thread: wait there until the stop click
        if change["new"] == 3:
            reached.set()
            release.wait(60)
    panel.progress.observe(hold_at_step_3, names="value")
    panel.button.click()
    assert panel.busy and panel.button.disabled and panel.thread is not None
    assert reached.wait(120), "the progress bar did not reach step 3"
    assert panel.thread.is_alive() and not panel.stop_button.disabled
    panel.stop_button.click()  # handled here, in the "kernel" thread, while the run is at step 3
    release.set()
    assert panel.wait(120)
    assert "at step 3 of 6" in panel.status.value and panel.results == []
    panel.progress.unobserve(hold_at_step_3, names="value")
    panel.button.click()       # resumes from the checkpoint at step 3
    assert panel.wait(120)
    assert len(panel.results) == 1 and panel.results[0].trainer.step == 6
    assert panel._rows()[-1][-1].endswith(" s")


def test_outside_a_kernel_the_panel_trains_in_the_callers_thread(given):
    panel = ablation_panel(BASE, Recorder(), results=given)
    assert panel.background is False and panel.thread is None
    panel.button.click()
    assert panel.thread is None and len(panel.results) == 3
