"""A raw WSGI application (no Pyramid) testing the bridge against PEP 3333."""

from __future__ import annotations

import json
import sys

from aiopyramid.asgi import make_asgi_app


def _json(start_response, data, status="200 OK"):
    body = json.dumps(data).encode()
    start_response(status, [("Content-Type", "application/json")])
    return [body]


def input_methods(environ, start_response):
    """Exercise read(n), readline, readline(n) and readlines."""
    stream = environ["wsgi.input"]
    first = stream.readline()
    part = stream.read(3)
    second = stream.readline(4)
    rest = stream.readlines()
    return _json(
        start_response,
        {
            "first": first.decode(),
            "part": part.decode(),
            "second": second.decode(),
            "rest": [line.decode() for line in rest],
        },
    )


def input_iter(environ, start_response):
    """Iterate over wsgi.input and read() what is left."""
    lines = [line.decode() for line in environ["wsgi.input"]]
    return _json(
        start_response, {"lines": lines, "left": environ["wsgi.input"].read().decode()}
    )


def names(environ, start_response):
    """Report SCRIPT_NAME and PATH_INFO."""
    return _json(start_response, [environ["SCRIPT_NAME"], environ["PATH_INFO"]])


def write(environ, start_response):
    """Use the write() callable before returning more body."""
    out = start_response("200 OK", [("Content-Type", "text/plain")])
    out(b"written ")
    return [b"and ", b"returned"]


def exc_info(environ, start_response):
    """Replace the headers after an error, before any body went out."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    try:
        raise ValueError("changed my mind")
    except ValueError:
        start_response(
            "503 Service Unavailable", [("Retry-After", "7")], sys.exc_info()
        )
    return [b"try later"]


def exc_info_late(environ, start_response):
    """Call start_response with exc_info after the body started: must re-raise."""
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"partial")
    try:
        raise ValueError("too late")
    except ValueError:
        try:
            start_response("500 Internal Server Error", [], sys.exc_info())
        except ValueError:
            return [b" re-raised"]
    return [b" swallowed"]


def twice(environ, start_response):
    """Call start_response twice without exc_info: an error."""
    start_response("200 OK", [])
    try:
        start_response("200 OK", [])
    except AssertionError as error:
        return [str(error).encode()]
    return [b"accepted twice"]


def no_start(environ, start_response):
    """Return a body without calling start_response."""
    return [b"oops"]


def empty(environ, start_response):
    """An empty body: headers still go out."""
    start_response("204 No Content", [("X-Empty", "yes")])
    return []


def generator(environ, start_response):
    """A body from a generator with a close() method."""
    start_response(
        "200 OK",
        [("Content-Type", "text/plain"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")],
    )

    def chunks():
        yield b""
        yield b"one "
        yield b"two"

    return chunks()


def gaps(environ, start_response):
    """Write nothing, then return an iterator without close() that has a gap."""
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"")
    return iter([b"left", b"", b"right"])


def holes(environ, start_response):
    """A list body with an empty chunk in the middle."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"left", b"", b"right"]


ROUTES = {
    name.replace("_", "-"): func
    for name, func in list(globals().items())
    if callable(func) and not name.startswith("_") and func.__module__ == __name__
}


def app(environ, start_response):
    """Dispatch on the first path segment."""
    view = ROUTES.get(environ["PATH_INFO"].strip("/").split("/")[0])
    if view is None:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"no such test"]
    return view(environ, start_response)


asgi = make_asgi_app(app)
