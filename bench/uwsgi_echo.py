"""The websocket echo of ``bench/websocket_apps.py`` under uWSGI.

Loaded by uWSGI (``module = bench.uwsgi_echo:application``), for
``bench/autobahn.py --server uwsgi``: the echo at ``/echo`` through
``UWSGIWebsocketMapper``.
"""

from __future__ import annotations

from aiopyramid.websocket.config import UWSGIWebsocketMapper
from bench.websocket_apps import pyramid_app

application = pyramid_app(mapper=UWSGIWebsocketMapper)
