"""``gfd.runs.reproduce``, ``gfd.report`` and ``python -m gfd reproduce``: every row, every seed, resumable, honest keys."""
import json

import pytest

from gfd import report
from gfd.runs import reproduce as rep
from gfd.cli import main
from gfd.data import get_loaders
from gfd.config import get_config
from gfd.tables import TABLE_SPECS
from gfd.utils import results_dir

TINY = ["crop=32", "batch_size=4", "unet_depth=2", "unet_width=4", "unet_max_width=16", "disc_width=4",
        "classifier_weights=random", "perceptual_weights=random", "steps=2", "c_pretrain_steps=1",
        "eval_every=0", "ckpt_every=0", "device=cpu", "num_workers=0"]

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def tiny(make_dataset, tmp_path):
    root = make_dataset(n=4)
    overrides = TINY + [f"data_root={root}"]
    bundle = get_loaders(root, get_config("quick", overrides))
    return dict(overrides=overrides, bundle=bundle, out=tmp_path / "results", cache=tmp_path / "runs")


def _reproduce(table, tiny, seeds=(0, 1, 2), **kw):
    return rep.reproduce(table, "quick", seeds, tiny["out"], tiny["overrides"], bundle=tiny["bundle"],
                         runs_root=tiny["cache"], progress=False, log=lambda *_: None, **kw)


def test_table4_has_every_row_and_seed_and_resumes_without_recomputing(tiny, monkeypatch):
    runs = _reproduce(4, tiny)
    assert list(runs) == ["G", "G+D", "G+C", "G+D+C", "G+D+C+L_percept"]
    assert all(sorted(by_seed) == [0, 1, 2] for by_seed in runs.values())
    md = (tiny["out"] / "table4.md").read_text()
    for method in runs:
        assert f"| {method} |" in md
    assert "(3 seeds)" in md and "Preset `quick`" in md and "74.77" in md   # paper column beside ours
    table = json.loads((tiny["out"] / "table4.json").read_text())
    assert [r["method"] for r in table["rows"]] == list(runs)
    names, classes, acc = report.per_class_means(table, "open")
    assert names == list(runs) and classes == tiny["bundle"].classes
    per_seed = [runs["G+D"][s]["results"]["test_open"]["per_class_acc"] for s in (0, 1, 2)]
    first = classes[0]
    assert acc[1][0] == pytest.approx(sum(float(p[first]) for p in per_seed) / 3)
    with pytest.raises(KeyError, match="world 'moon'"):
        report.per_class_means(table, "moon")
    assert all(r["summary"]["closed"]["n"] == 3 for r in table["rows"])
    assert table["meta"]["preset"] == "quick" and table["meta"]["seeds"] == [0, 1, 2]
    # G-only of Table 4 really trains without D, C and the perceptual loss
    g = runs["G"][0]
    assert g["weights"] == report.NO_PRETRAINED and "C random" in runs["G+C"][0]["weights"]

    def fail(*a, **k):
        raise AssertionError("a stored run was recomputed")
    monkeypatch.setattr(rep, "train_and_measure", fail)
    again = _reproduce(4, tiny)
    assert again == runs


def test_a_changed_config_or_a_torn_file_is_recomputed(tiny):
    runs = _reproduce(4, tiny, seeds=(0,))
    spec = rep.RunSpec("G", 0, get_config("quick", tiny["overrides"]))
    path = spec.path(tiny["out"])
    data = tiny["bundle"].identity
    assert rep.load_run(path, spec.key(data)) == runs["G"][0]
    assert rep.load_run(path, spec.key("another dataset")) is None                 # other data: recomputed
    other = rep.RunSpec("G", 0, get_config("quick", tiny["overrides"] + ["w1=3"]))
    assert other.key(data) != spec.key(data) and rep.load_run(path, other.key(data)) is None
    path.write_text("{not json")
    assert rep.load_run(path, spec.key(data)) is None


def test_gfd_net_of_table1_shares_its_runs_with_the_full_model_of_table4():
    cfg = get_config("quick", TINY)
    assert rep.run_slug("GFD-Net") == rep.run_slug("G+D+C+L_percept")
    assert rep.RunSpec("GFD-Net", 1, cfg).key() == rep.RunSpec("G+D+C+L_percept", 1, cfg).key()
    assert rep.RunSpec("G", 1, cfg).config().g_only
    assert rep.RunSpec("PRNU", 1, cfg).key() != rep.RunSpec("DCT", 1, cfg).key()


def test_bad_requests_fail_clearly(tiny):
    with pytest.raises(ValueError, match="tables reproduced here are"):
        rep.select_methods(5)
    with pytest.raises(ValueError, match=r"no row \['G\+Q'\]"):
        _reproduce(4, tiny, only=["G", "G+Q"])
    with pytest.raises(ValueError, match="distinct seeds"):
        _reproduce(4, tiny, seeds=(0, 0))


def test_cli_reproduces_table1_with_the_baselines(tiny, monkeypatch, capsys):
    monkeypatch.setattr("gfd.train.runs_dir", lambda: tiny["cache"])
    args = ["reproduce", "--table", "1", "--preset", "quick", "--seeds", "0", "1", "2",
            "--out", str(tiny["out"]), "--no-progress"]
    for item in tiny["overrides"]:
        args += ["--set", item]
    assert main(args) == 0
    out = capsys.readouterr().out
    for method in ("PRNU", "DCT", "AttNet", "GFD-Net"):
        assert f"| {method} |" in out
    prnu_row = next(line for line in out.splitlines() if line.startswith("| PRNU |"))
    dct_row = next(line for line in out.splitlines() if line.startswith("| DCT |"))
    assert "(deterministic)" in prnu_row and "(deterministic)" not in dct_row and "] (3 seeds)" in dct_row
    assert "Produced by `python -m gfd reproduce --table 1 --preset quick --seeds 0 1 2" in out
    table = report.load_table(1, tiny["out"])
    assert table["reference"]["AttNet"] == {"closed": 99.44, "open": 65.18}
    per_seed = {r["method"]: r["per_seed"] for r in table["rows"]}
    assert all(len(v) == 3 and 0.0 <= v[0]["open"] <= 1.0 for v in per_seed.values())
    assert (tiny["cache"]).is_dir() and any(tiny["cache"].iterdir())     # GFD-Net went to the cache


def _stats(mean, std):
    return {"mean": mean, "std": std, "n": 3, "values": [mean] * 3}


def test_claims_compare_means_and_flag_gaps_inside_the_seed_spread():
    summary = {"G": {"open": _stats(0.70, 0.01)}, "G+D": {"open": _stats(0.75, 0.01)},
               "G+C": {"open": _stats(0.69, 0.01)}, "G+D+C": {"open": _stats(0.71, 0.05)},
               "G+D+C+L_percept": {"open": _stats(0.60, 0.01)}}
    claims = {c.text: c for c in report.check_claims(4, summary)}
    assert claims["open: G+D <= G"].verdict == "reversed"                  # D alone helped here, clearly
    assert claims["open: G+C <= G"].verdict == "reproduced"
    assert claims["open: G+D+C > G"].verdict == "same direction, within the seed spread"
    assert claims["open: G+D+C+L_percept > G"].verdict == "reversed"
    within = report.check_claims(4, {**summary, "G+D": {"open": _stats(0.72, 0.03)}})
    assert {c.text: c for c in within}["open: G+D <= G"].verdict == "not reproduced, within the seed spread"
    assert claims["open: G+D+C > G"].paper_gap == pytest.approx(76.40 - 74.77)
    assert claims["open: G+D+C > G"].gap == pytest.approx(1.0)
    assert len(report.check_claims(1, {"GFD-Net": summary["G"]})) == 0          # rows missing: no claim


def test_methods_keeps_some_rows_in_the_table_order(tiny, monkeypatch, capsys):
    monkeypatch.setattr("gfd.train.runs_dir", lambda: tiny["cache"])
    out = tiny["out"] / "subset"
    assert main(["reproduce", "--table", "4", "--preset", "quick", "--seeds", "0", "--methods", "G+C", "G",
                 "--out", str(out), "--no-progress", *(f"--set={kv}" for kv in tiny["overrides"])]) == 0
    table = report.load_table(4, out)
    assert [r["method"] for r in table["rows"]] == ["G", "G+C"]
    assert table["meta"]["command"].endswith("--methods G+C G")


def test_seeds_to_resolve_follows_the_standard_error_of_a_difference():
    assert report.seeds_to_resolve(gap=4.0, std=15.0) == 113            # 2 * (2 * 15 / 4)^2 = 112.5
    assert report.seeds_to_resolve(gap=-4.0, std=15.0) == 113
    assert report.seeds_to_resolve(gap=30.0, std=1.0) == 2
    assert report.seeds_to_resolve(gap=0.0, std=1.0) == float("inf")


def test_jobs_units_never_split_a_seeds_c_rows_and_come_longest_first():
    """--jobs' units: a seed's rows with C stay together (they share its cached C), C units first."""
    assert rep.job_tasks(4, (0, 1)) == [(0, ["G+C", "G+D+C", "G+D+C+L_percept"]), (1, ["G+C", "G+D+C", "G+D+C+L_percept"]),
                                        (0, ["G", "G+D"]), (1, ["G", "G+D"])]
    assert rep.job_tasks(1, (3,)) == [(3, ["GFD-Net"]), (3, ["PRNU", "DCT", "AttNet"])]
    assert rep.job_tasks(4, (0,), only=["G"]) == [(0, ["G"])]


def test_jobs_train_in_worker_processes_with_the_records_of_one_process(tiny, tmp_path, monkeypatch):
    rows = ["G+C"]
    one = _reproduce(4, tiny, seeds=(0, 1, 2), only=rows)
    messages = []

    def fail(*a, **k):
        raise AssertionError("the parent trained a run: the workers should have")
    monkeypatch.setattr(rep, "train_and_measure", fail)       # the workers are other processes
    monkeypatch.setattr(rep.os, "cpu_count", lambda: 2)       # two cores: one thread per worker
    two = rep.reproduce(4, "quick", (0, 1, 2), tmp_path / "two", tiny["overrides"], bundle=tiny["bundle"],
                        runs_root=tmp_path / "runs-two", progress=False, log=messages.append, only=rows, jobs=2)
    units = sorted(m.split(", unit ")[1] for m in messages if m.startswith("worker"))
    assert units == [f"{n}/3: seed {n - 1}, G+C (1 thread(s))" for n in (1, 2, 3)]     # one queue, every unit once
    assert {m.split(",")[0] for m in messages if m.startswith("worker")} <= {"worker 1/2", "worker 2/2"}
    for method in rows:
        for seed in (0, 1, 2):
            a, b = one[method][seed], two[method][seed]
            assert a["key"] == b["key"] and a["results"] == b["results"] and a["training"] == b["training"]
    assert (tmp_path / "two" / "table4.md").is_file()
    with pytest.raises(RuntimeError, match=r"\['seed 0: G\+D\+C\+L_percept', 'seed 1: G\+D\+C\+L_percept', 'seed 0: G', 'seed 1: G'\] failed"):
        rep.run_jobs(4, "quick", [0, 1], tmp_path / "bad", ["no_such_field=1"], jobs=2, log=lambda *_: None,
                     only=["G", "G+D+C+L_percept"])


def test_every_committed_record_carries_its_config_and_its_key_follows_from_it():
    from gfd.config import Config
    from gfd.runs.records import SCHEMA, read_record, record_key
    paths = sorted(results_dir().glob("**/runs/*/*.json"))
    assert len(paths) >= 100
    for path in paths:
        record = read_record(path)
        assert record["schema"] == SCHEMA and record_key(record) == record["key"], path
        assert Config.from_dict(record["config"]).seed == record["seed"], path


def test_a_record_of_another_format_is_refused_with_its_name(tmp_path):
    from gfd.runs.records import read_record
    path = tmp_path / "g-seed0.json"
    path.write_text(json.dumps({"method": "G", "seed": 0, "key": "0b52cee3a441"}))
    with pytest.raises(ValueError, match="g-seed0.json.*format"):
        read_record(path)


@pytest.mark.parametrize("table", [4, 3])
def test_a_committed_table_regenerates_unchanged_from_its_records_without_data(table, tmp_path, monkeypatch):
    """python -m gfd reproduce, run with the command a committed table records, finds every run by its
    key (no data loaded, nothing trained) and writes the same Markdown and JSON, byte for byte."""
    import shlex
    import shutil
    committed = results_dir()
    meta = json.loads((committed / f"table{table}.json").read_text())["meta"]
    folder = TABLE_SPECS[table].records_folder(meta["preset"])
    shutil.copytree(committed / "runs" / folder, tmp_path / "runs" / folder)
    monkeypatch.setattr(rep, "train_and_measure", lambda *a, **k: pytest.fail("a recorded run was trained again"))
    monkeypatch.setattr(rep, "load_data", lambda *a, **k: pytest.fail("data were loaded for recorded runs"))
    assert main([*shlex.split(meta["command"])[3:], "--out", str(tmp_path), "--no-progress"]) == 0
    for name in (f"table{table}.md", f"table{table}.json"):
        assert (tmp_path / name).read_bytes() == (committed / name).read_bytes(), name


def test_tables_of_another_seed_set_go_to_their_own_folder_and_read_the_same_records(tmp_path, monkeypatch):
    """--tables-out writes a table of some seeds elsewhere; the records stay under --out/runs, and
    the table at --out is left alone."""
    import shutil
    committed = results_dir()
    shutil.copytree(committed / "runs" / "course", tmp_path / "runs" / "course")
    (tmp_path / "table4.md").write_text("exploratory\n")
    monkeypatch.setattr(rep, "train_and_measure", lambda *a, **k: pytest.fail("a recorded run was trained again"))
    args = ["reproduce", "--table", "4", "--preset", "course", "--seeds", "3", "4", "--out", str(tmp_path),
            "--tables-out", str(tmp_path / "subset"), "--no-progress"]
    assert main(args) == 0
    subset = json.loads((tmp_path / "subset" / "table4.json").read_text())
    assert subset["meta"]["seeds"] == [3, 4] and "--tables-out" in subset["meta"]["command"]
    assert (tmp_path / "table4.md").read_text() == "exploratory\n"
