"""``python -m gfd speed --data``: the report shares each step's time between loading the data and the
step itself, and the loading is measured on the trainer's own streams.  Nothing here is timed."""
import math

from gfd import speed

def step_row(preset, mode, s_per_step):
    return {"preset": preset, "mode": mode, "device": "cpu", "amp": "off", "batch": 16, "crop": 48,
            "s_per_step": s_per_step, "img_per_s": 16 / s_per_step, "peak_mib": 800.0,
            "memory": "process peak RSS", "threads": 2}


def test_the_bench_report_shares_time_between_data_and_step():
    assert speed.wait_share(1.0, 3.0) == 0.25 and speed.wait_share(0.0, 2.0) == 0.0
    rows = [step_row("course", "G-only", 0.1), step_row("course", "full GFD", 0.5), step_row("paper", "G-only", 1.0)]
    loading = [{"preset": "course", "num_workers": 0, "pin_memory": False,
                "s_per_batch": {"x": 0.02, "x_real": 0.03}}]
    out = speed.with_loading(rows, loading)
    assert math.isclose(out[0]["data_s"], 0.02) and math.isclose(out[0]["data_share"], 0.02 / 0.12)
    assert math.isclose(out[1]["data_s"], 0.05) and math.isclose(out[1]["data_share"], 0.05 / 0.55)
    assert out[1]["keeps_up"] and "data_s" not in out[2]                  # paper: no loading measured
    text = speed.format_report(out)
    assert "img/s" in text and "peak MiB" in text and "waiting on data" in text
    assert "16.7%" in text and "9.1%" in text and "(no workers: the loop loads)" in text
    worked = speed.with_loading(rows[:2], [loading[0] | {"num_workers": 2, "s_per_batch": {"x": 0.3, "x_real": 0.3}}])
    assert [line.split()[-1] for line in speed.format_report(worked).splitlines()[-3:-1]] == ["no", "no"]


def test_measure_loading_draws_the_trainers_streams(make_dataset):
    root = make_dataset(n=4)
    got = speed.measure_loading("quick", batches=2, warmup=1, batch_size=2,
                                overrides=[f"data_root={root}", "crop=32", "num_workers=0"])
    assert (got["batch"], got["num_workers"], got["pin_memory"], got["batches"]) == (2, 0, False, 2)
    assert set(got["s_per_batch"]) == {"x", "x_real"} and all(v > 0 for v in got["s_per_batch"].values())
    g_only = speed.measure_loading("quick", batches=1, warmup=0, overrides=[
        f"data_root={root}", "crop=32", "num_workers=0", "use_D=false", "use_C=false", "use_percept=false"])
    assert set(g_only["s_per_batch"]) == {"x"}
