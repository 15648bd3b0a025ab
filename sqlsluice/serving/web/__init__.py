"""The web console of ``sluice serve``, on the ``[http]`` port beside ``/metrics`` and ``/healthz``.

Admin users of ``[[users]]`` (``admin = true``) log in at ``/console/login``; the console shows
the rewrite store of every database (original and rewritten SQL side by side, rules, proof,
verified and served timings as plotly charts) with approve / reject / forget, which drive
review mode (``[rewrite] mode = "review"``), and the ASK history with TEP over time.
Starlette routes (:mod:`sqlsluice.serving.web.app`) on the server's own event loop; Jinja2
templates; plotly.js served from the ``plotly`` package (no CDN).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlsluice.middleware.server import SluiceServer


def console_routes(server: SluiceServer) -> list[Any]:
    """The console's routes, to mount in the server's HTTP app (:func:`sqlsluice.serving.metrics.make_app`)."""
    from sqlsluice.serving.web.app import console_routes as routes

    return routes(server)
