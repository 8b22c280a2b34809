"""Tests of aiopyramid.gunicorn: the worker, its HTTP protocol and its websockets."""
