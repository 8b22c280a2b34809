"""Applications and helpers for the tests that run a real uWSGI."""
