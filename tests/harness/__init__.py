"""The one test harness, shared by ``tests/`` and ``bench/``.

* :mod:`.servers`: the one server launcher, ``free_port``, the time unit
  ``UNIT`` (``AIOPYRAMID_TEST_TIMEOUT_UNIT``, every timeout is a multiple of
  it), ``wait_until`` (and ``wait_until_async``) and ``require``;
* :mod:`.uwsgi`: Debian's uWSGI and the virtualenv its Python uses;
* :mod:`.redis_server`: a private redis-server;
* :mod:`.postgres`: a throwaway PostgreSQL cluster, which a test may restart;
* :mod:`.raw_http` and :mod:`.raw_websocket`: clients on plain sockets;
* :mod:`.asgi_client`: an ASGI application driven in process;
* :mod:`.inprocess`: small Pyramid applications driven in process;
* :mod:`.browser`: headless Chromium;
* :mod:`.tls`: a self-signed certificate;
* :mod:`.packaging`: a built wheel, fresh virtualenvs, a README's steps;
* :mod:`.mixed_load` and :mod:`.faults_app`: the mixed load of the leak
  test and the soak, and the application it runs against.

``bench/`` imports from here and from nowhere else in ``tests/``.
"""
