"""WebSocket support: one ``ws`` interface on gunicorn, ASGI servers and uWSGI."""
