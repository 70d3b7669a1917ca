"""Contact sheets and closest-pair pictures."""

import numpy as np
import pytest
from PIL import Image

from passersby.metrics.sheets import _FOUND, _MISSED, contact_sheet, pairs_image, save_jpeg


def test_contact_sheet_layout_and_detector_dots():
    images = np.stack([np.full((64, 64, 3), 100 + i, np.uint8) for i in range(5)])  # (5, 64, 64, 3)
    sheet = contact_sheet(images, ncol=4, tile=32, found=[True, False, True, True, False], pad=2)
    assert sheet.shape == (2 * 34 + 2, 4 * 34 + 2, 3)
    assert sheet[5, 5].tolist() == list(_FOUND) and sheet[5, 34 + 5].tolist() == list(_MISSED)
    assert sheet[20, 20].tolist() == [100, 100, 100]  # tile content, away from the dot
    assert sheet[-10, -10].tolist() == [24, 24, 24]  # the empty eighth slot stays background
    with pytest.raises(ValueError):
        contact_sheet(images, found=[True])


def test_pairs_image_puts_generated_above_training(tmp_path):
    gen = np.stack([np.full((48, 48, 3), v, np.uint8) for v in (10, 20)])
    train = np.stack([np.full((48, 48, 3), v, np.uint8) for v in (200, 210, 220)])
    pairs = [{"generated": 1, "train": 2, "distance": 0.05}, {"generated": 0, "train": 0, "distance": 0.2}]
    picture = pairs_image(gen, train, pairs, tile=40)
    top, bottom = 16 + 4 + 20, 16 + 8 + 40 + 20  # middle of each row of faces
    assert picture[top, 4 + 20].tolist() == [20] * 3 and picture[bottom, 4 + 20].tolist() == [220] * 3
    assert picture[top, 48 + 20].tolist() == [10] * 3 and picture[bottom, 48 + 20].tolist() == [200] * 3
    with pytest.raises(ValueError):
        pairs_image(gen, train, [])
    path = tmp_path / "sub" / "pairs.jpg"
    size = save_jpeg(path, picture, quality=80)
    assert size == path.stat().st_size and Image.open(path).size == picture.shape[1::-1]
