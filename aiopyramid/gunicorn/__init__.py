"""Gunicorn support: :class:`~aiopyramid.gunicorn.worker.AsyncGunicornWorker`."""
