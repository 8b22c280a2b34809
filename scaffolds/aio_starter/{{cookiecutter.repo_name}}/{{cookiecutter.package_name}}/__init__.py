"""{{ cookiecutter.project_name }}: a Pyramid application on asyncio."""

from pyramid.config import Configurator


def main(global_config, **settings):
    """Build the WSGI application; ``pserve`` calls this with the ini's settings."""
    with Configurator(settings=settings) as config:
        config.include("aiopyramid")
        config.add_route("home", "/")
        config.add_route("plain", "/plain")
        config.scan(".views")
    return config.make_wsgi_app()
