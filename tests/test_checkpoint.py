"""gfd.checkpoint: the file format and its checks (round trip, format tag, what is refused and why,
map_location), and the weights-only export (what inference needs, refused for training, never written
over a checkpoint or a folder)."""
import pytest
import torch

from gfd.checkpoint import FORMAT, FORMAT_VERSION, CheckpointError, load_checkpoint, save_checkpoint


STATE = {"config": {"a": 1}, "classes": ["real", "x"], "step": 3, "models": {"G": {"w": torch.ones(2)}}}


def test_checkpoint_round_trip_and_format_tag(tmp_path):
    path = save_checkpoint(tmp_path / "sub" / "c.pt", dict(STATE))
    assert path == tmp_path / "sub" / "c.pt"
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == FORMAT == "gfd-checkpoint" and raw["version"] == FORMAT_VERSION == 1
    state = load_checkpoint(str(path))
    assert state["step"] == 3 and torch.equal(state["models"]["G"]["w"], torch.ones(2))
    for key in ("config", "classes", "step", "models"):
        with pytest.raises(KeyError, match=key):
            save_checkpoint(tmp_path / "bad.pt", {k: v for k, v in STATE.items() if k != key})
    assert not (tmp_path / "bad.pt").exists()


@pytest.mark.parametrize("change, message", [
    ({"version": 2}, "format version 2, this code reads version 1"),
    ({"format": "other"}, "not a gfd checkpoint"),
    ({"models": None}, None),
])
def test_checkpoint_checks(tmp_path, change, message):
    payload = {"format": FORMAT, "version": FORMAT_VERSION, **STATE, **change}
    if change == {"models": None}:
        del payload["models"]
        message = r"incomplete gfd checkpoint: missing \['models'\]"
    torch.save(payload, tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(tmp_path / "c.pt")


def test_a_torch_file_that_is_not_a_dict_is_refused(tmp_path):
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="list.pt is a torch file but not a gfd checkpoint .*holds list"):
        load_checkpoint(tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="is a folder, not a checkpoint file; give the file"):
        load_checkpoint(tmp_path)                                     # a folder is not a checkpoint
    torch.save({f"k{i:02d}": i for i in range(12)}, tmp_path / "many.pt")
    keys = ", ".join(f"'k{i:02d}'" for i in range(10))               # the first ten, sorted
    with pytest.raises(CheckpointError, match=rf"holds a dict with keys \[{keys}\], without format="):
        load_checkpoint(tmp_path / "many.pt")


def test_checkpoint_map_location(tmp_path):
    save_checkpoint(tmp_path / "c.pt", dict(STATE))
    assert load_checkpoint(tmp_path / "c.pt", map_location="meta")["models"]["G"]["w"].is_meta


# --- the weights-only export ----------------------------------------------------------------------

def test_export_keeps_what_inference_needs_and_is_refused_for_training(tmp_path):
    from gfd.checkpoint import EXPORT_FORMAT, export_weights

    full = dict(STATE, models={"G": {"w": torch.ones(2)}, "D": {"v": torch.zeros(3)}}, meta={"device": "cpu"},
                optim={"G": None})
    src = save_checkpoint(tmp_path / "checkpoint.pt", full)
    out = export_weights(src, tmp_path / "w.pt")
    assert out == tmp_path / "w.pt" and sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt", "w.pt"]
    raw = torch.load(out, weights_only=True)
    assert raw["format"] == EXPORT_FORMAT == "gfd-weights" and raw["version"] == FORMAT_VERSION
    assert set(raw) == {"format", "version", "config", "classes", "step", "meta", "models"}
    assert list(raw["models"]) == ["G"] and torch.equal(raw["models"]["G"]["w"], torch.ones(2))
    assert (raw["config"], raw["classes"], raw["step"], raw["meta"]) == ({"a": 1}, ["real", "x"], 3, {"device": "cpu"})
    with pytest.raises(CheckpointError, match="w.pt is a weights-only export"):
        load_checkpoint(out)
    assert load_checkpoint(out, allow_export=True)["format"] == EXPORT_FORMAT
    # an export of an export is the same export; a checkpoint without meta gets an empty one
    assert torch.load(export_weights(out, tmp_path / "w2.pt"), weights_only=True)["meta"] == {"device": "cpu"}
    bare = save_checkpoint(tmp_path / "bare.pt", dict(STATE))
    assert torch.load(export_weights(bare, tmp_path / "w3.pt"), weights_only=True)["meta"] == {}


def test_export_never_overwrites_a_checkpoint_or_a_folder(tmp_path):
    from gfd.checkpoint import export_weights

    src = save_checkpoint(tmp_path / "checkpoint.pt", dict(STATE))
    before = src.read_bytes()
    with pytest.raises(ValueError, match=r"checkpoint\.pt is the checkpoint itself; give the path of a new "
                                         r"file, e\.g\. checkpoint\.weights\.pt"):
        export_weights(src, src)
    with pytest.raises(ValueError, match=r" is a folder; give the path"):
        export_weights(src, tmp_path)
    other = save_checkpoint(tmp_path / "other.pt", dict(STATE, step=9))
    with pytest.raises(ValueError, match="other.pt is a full gfd checkpoint"):
        export_weights(src, other)
    assert src.read_bytes() == before and load_checkpoint(other)["step"] == 9
    # a file that is not a gfd checkpoint (or not a torch file) may be replaced
    (tmp_path / "junk.pt").write_text("junk")
    torch.save({"format": "gfd-weights"}, tmp_path / "old_export.pt")
    for name in ("junk.pt", "old_export.pt"):
        assert torch.load(export_weights(src, tmp_path / name), weights_only=True)["format"] == "gfd-weights"
    no_g = save_checkpoint(tmp_path / "no_g.pt", dict(STATE, models={"D": {}}))
    with pytest.raises(CheckpointError, match=r"holds no generator G \(networks: \['D'\]\)"):
        export_weights(no_g, tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()
