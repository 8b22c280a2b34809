"""{{ cookiecutter.project_name }}: a websocket room on asyncio."""

from pyramid.config import Configurator


def main(global_config, **settings):
    """Build the WSGI application; ``pserve`` calls this with the ini's settings."""
    with Configurator(settings=settings) as config:
        config.include("aiopyramid")
        config.include("pyramid_jinja2")
        config.add_static_view("static", "static", cache_max_age=3600)
        config.add_route("home", "/")
        config.add_route("room", "/room")
        config.add_route("stats", "/stats")
        config.scan(".views")
    return config.make_wsgi_app()
