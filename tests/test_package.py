"""The package as pip installs it: a wheel under 60 MB that carries its models and their cards."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMIT_MB = 60
SHIPPED = ("default.safetensors", "MODEL_CARD.md", "enhancer.safetensors", "ENHANCER_CARD.md",
           "painter.safetensors", "PAINTER_CARD.md", "default-directions.safetensors")


def test_the_wheel_is_small_and_ships_every_model_in_the_assets(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    (wheel,) = tmp_path.glob("passersby-*.whl")
    assert wheel.stat().st_size < LIMIT_MB * 1e6, f"{wheel.stat().st_size / 1e6:.1f} MB"
    names = set(zipfile.ZipFile(wheel).namelist())
    # Every model file in the source tree's assets is in the wheel, with the cards.
    assets = {p.name for p in (ROOT / "passersby" / "assets").iterdir() if p.is_file()}
    assert set(SHIPPED) <= assets
    assert {f"passersby/assets/{a}" for a in assets} <= names
    assert sum(zipfile.ZipFile(wheel).getinfo(n).file_size for n in names) < LIMIT_MB * 1e6
