"""Hidden files (a name starting with ".") in a class folder are not images of the class: the layout's
listing, the counts, the loaders and ``prepare`` agree on that."""
from pathlib import Path

from conftest import write_image
from gfd import data, layout
from gfd.config import Config


def test_hidden_files_in_a_class_folder_are_not_listed_counted_or_loaded(dataset):
    folder = dataset / "train" / "ganA"
    write_image(folder / ".hidden.png", seed=99)
    write_image(folder / "._000.png", seed=98)                 # macOS resource-fork twins
    listed = layout.list_images(folder)
    assert [p.name for p in listed] == ["000.png", "001.png", "002.png", "003.png"]
    assert layout.split_sources(dataset, "train") == {"ganA": 4, "ganB": 4, "real": 4}
    ds = data.get_loaders(dataset, Config()).datasets["train"]
    assert [Path(p) for p, t in ds.samples if t == ds.class_to_idx["ganA"]] == listed
