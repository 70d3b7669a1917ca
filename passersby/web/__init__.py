"""The web kiosk sink: serves the engine's screens to browsers (see server.py).

Example:
    >>> from passersby.web import KioskServer  # starts a web server  # doctest: +SKIP
    >>> with KioskServer(hub, port=0) as server:  # starts a web server  # doctest: +SKIP
    ...     print("operator:", server.control_url)
"""

from passersby.web.server import KioskServer, control_url

__all__ = ["KioskServer", "control_url"]
