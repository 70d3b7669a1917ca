"""Monitors off outside opening hours, where the display allows it (X11 DPMS via `xset`).

Best effort: without X11, without xset or without DPMS support nothing happens and the screens
show the black frame instead (which an OLED or a projector turns into near darkness anyway).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess

log = logging.getLogger("passersby")


def set_monitors(on: bool) -> bool:
    """Force the X display's monitors on or off; True if xset did it.

    Example:
        >>> set_monitors(False)  # a display: turns the monitors off  # doctest: +SKIP
        True
    """
    if not os.environ.get("DISPLAY") or shutil.which("xset") is None:
        return False
    try:
        r = subprocess.run(["xset", "dpms", "force", "on" if on else "off"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        log.warning("monitors %s: xset failed (%s)", "on" if on else "off", e)
        return False
    return r.returncode == 0
