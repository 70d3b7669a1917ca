"""Real images for measurement: a prepared dataset or a plain folder of images."""

import shutil

import numpy as np
import pytest

from conftest import PORTRAITS
from passersby.metrics.reference import ReferenceError, load_reference


def test_plain_folder_is_read_square_and_resized(tmp_path):
    for p in sorted(PORTRAITS.glob("*.jpg"))[:3]:
        shutil.copy(p, tmp_path / p.name)
    (tmp_path / "broken.png").write_bytes(b"not an image")
    (tmp_path / "notes.txt").write_text("ignored")
    ref = load_reference(tmp_path, 48)
    assert ref.kind == "folder" and ref.images.shape == (3, 48, 48, 3) and ref.images.dtype == np.uint8
    assert ref.names == sorted(p.name for p in PORTRAITS.glob("*.jpg"))[:3]
    assert [name for name, _ in ref.skipped] == ["broken.png"]
    assert ref.describe()["n"] == 3


def test_prepared_dataset_is_read_with_the_training_loader(prepared_data):
    ref = load_reference(prepared_data, 32)
    assert ref.kind == "prepared" and ref.images.shape[1:] == (32, 32, 3) and len(ref.images) == len(ref.names)
    assert ref.data_hash


def test_bad_folders_are_refused(tmp_path):
    with pytest.raises(ReferenceError, match="not a folder"):
        load_reference(tmp_path / "missing", 64)
    with pytest.raises(ReferenceError, match="no readable images"):
        load_reference(tmp_path, 64)
    (tmp_path / "manifest.json").write_text("{}")
    with pytest.raises(ReferenceError):
        load_reference(tmp_path, 64)
