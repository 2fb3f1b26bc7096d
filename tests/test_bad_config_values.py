"""Every numeric config field is range-checked: a value the code cannot use is refused up front with
one line that names the field, the value and the allowed range (``python -m gfd ... --set k=v`` exits
2), never a traceback or a run that "finishes" without training (issue 32, item 2).

The property-based test drives the CLI's own config parsing (``python -m gfd train --preset quick
--set k=v``, in-process) with the training itself replaced by a stub, for every field of
:class:`gfd.config.Config` and valid and invalid strings alike."""
import math
from dataclasses import fields

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gfd import cli
from gfd.config import PRESETS, Config, get_config

FIELDS = [f.name for f in fields(Config)]
NUMERIC = [f.name for f in fields(Config) if str(f.type).split(" |")[0] in ("int", "float")]

# what the code needs of each numeric field, written independently of gfd.config's table
POSITIVE = {"crop", "batch_size", "unet_depth", "unet_width", "unet_max_width", "disc_width", "disc_layers",
            "classifier_width", "backbone_depth", "backbone_width", "backbone_max_width", "lr_step", "steps",
            "c_pretrain_steps", "lr", "fingerprint_scale", "lr_gamma"}
NON_NEGATIVE = {"num_workers", "decoder_width", "eval_every", "patience", "ckpt_every", "seed",
                "w1", "w2", "w3", "w4", "patience_after"}
AT_MOST_ONE = {"lr_gamma", "patience_after"}


@pytest.fixture
def no_training(monkeypatch):
    """``train``'s work replaced by a stub that records the config it was given."""
    seen = []

    def stub(args, cfg):
        seen.append(cfg)
        return 0
    monkeypatch.setattr(cli, "_train", stub)
    return seen


def run_train(capsys, *sets):
    args = ["train", "--preset", "quick"]
    for kv in sets:
        args += ["--set", kv]
    rc = cli.main(args)
    return rc, capsys.readouterr().err


def assert_usable(cfg: Config) -> None:
    """What the training code needs of a config's numbers (the oracle of the property test)."""
    for name in NUMERIC:
        value = getattr(cfg, name)
        if value is None:
            assert name == "num_workers"
            continue
        assert not isinstance(value, bool) and math.isfinite(value), (name, value)
        if name in POSITIVE:
            assert value > 0, (name, value)
        if name in NON_NEGATIVE:
            assert value >= 0, (name, value)
        if name in AT_MOST_ONE:
            assert value <= 1, (name, value)
    assert cfg.crop >= 2 ** cfg.unet_depth
    assert Config.from_dict(cfg.to_dict()) == cfg


def test_every_numeric_field_has_a_checked_range():
    from gfd.config import NUMERIC_RANGES
    assert sorted(NUMERIC_RANGES) == sorted(NUMERIC)
    assert set(NUMERIC) == POSITIVE | NON_NEGATIVE


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_still_builds_and_is_usable(name):
    assert_usable(get_config(name))


@pytest.mark.parametrize("item, rule", [
    ("steps=-5", "it must be >= 1"),
    ("steps=0", "it must be >= 1"),
    ("crop=0", "it must be >= 1"),
    ("batch_size=0", "it must be >= 1"),
    ("lr=nan", "it must be a finite number"),
    ("lr=0", "it must be > 0"),
    ("lr=inf", "it must be a finite number"),
    ("unet_depth=0", "it must be >= 1"),
    ("eval_every=-1", "it must be >= 0"),
    ("ckpt_every=-3", "it must be >= 0"),
    ("patience_after=1.5", "it must be >= 0 and <= 1"),
    ("lr_gamma=0", "it must be > 0 and <= 1"),
    ("num_workers=-1", "it must be >= 0"),
    ("seed=-1", "it must be >= 0"),
    ("w2=-0.1", "it must be >= 0"),
])
def test_the_issues_values_are_refused_in_one_line_before_any_work(no_training, capsys, item, rule):
    rc, err = run_train(capsys, item)
    name, value = item.split("=")
    assert rc == 2 and no_training == []
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: config field {name}=") and rule in lines[0], err
    assert "Traceback" not in err


def test_a_crop_too_small_for_the_u_net_names_both_fields(no_training, capsys):
    rc, err = run_train(capsys, "crop=4", "unet_depth=3")
    assert rc == 2 and "crop=4" in err and "unet_depth=3" in err and ">= 2**unet_depth = 8" in err


def test_the_range_checks_hold_for_configs_built_in_python_and_read_back():
    with pytest.raises(ValueError, match=r"config field steps=-5 is not allowed; it must be >= 1"):
        Config(steps=-5)
    with pytest.raises(ValueError, match=r"config field batch_size=2.5 is not allowed; it must be an integer"):
        Config(batch_size=2.5)
    with pytest.raises(ValueError, match=r"config field lr=nan"):
        Config.from_dict(Config().to_dict() | {"lr": float("nan")})
    with pytest.raises(ValueError, match=r"config field preset='../x'"):
        Config(preset="../x")          # the preset names the run folder: no path in it


INTS = st.integers(-(10**12), 10**12).map(str)
FLOATS = st.floats(allow_nan=True, allow_infinity=True).map(repr)
WORDS = st.sampled_from(["", " ", "none", "None", "null", "true", "false", "yes", "0", "1", "-1", "0.5", "-0.0",
                         "1e-3", "1_000", " 7 ", "nan", "-inf", "0x10", "abc", "auto", "cpu", "quick",
                         "../x", "\u0661\u0662", "1e400"])
VALUES = st.one_of(INTS, FLOATS, WORDS, st.text(max_size=6))


@settings(max_examples=400, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(FIELDS), value=VALUES, extra=st.none() | st.tuples(st.sampled_from(FIELDS), VALUES))
def test_any_set_value_is_either_a_usable_config_or_one_line_naming_the_field(no_training, capsys, name, value,
                                                                              extra):
    """``--set name=value`` (and sometimes a second one) for every field: exit 0 with a usable config,
    or exit 2 with one ``error:`` line naming a field that was set; never a traceback."""
    no_training.clear()
    sets = [f"{name}={value}"] + ([f"{extra[0]}={extra[1]}"] if extra else [])
    rc, err = run_train(capsys, *sets)     # any exception would escape here: the test fails on it
    if rc == 0:
        (cfg,) = no_training
        assert_usable(cfg)
        assert err == ""
    else:
        assert rc == 2 and no_training == [], (rc, err)
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: config field"), err
        named = {name} | ({extra[0]} if extra else set())
        assert any(f"config field {n}" in lines[0] or f"{n}=" in lines[0] for n in named), (sets, err)
