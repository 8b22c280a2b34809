"""{{ cookiecutter.project_name }}: a Pyramid application on asyncio, with SQLAlchemy."""

from pyramid.config import Configurator
from pyramid.csrf import CookieCSRFStoragePolicy
from pyramid.events import BeforeRender

PROJECT = "{{ cookiecutter.project_name }}"


def add_renderer_globals(event):
    """What every template may use besides its view's values.

    ``package`` makes asset specs: ``request.static_path(package ~
    ':static/theme.css')``.
    """
    event["project"] = PROJECT
    event["package"] = __name__


def main(global_config, **settings):
    """Build the WSGI application; ``pserve`` calls this with the ini's settings."""
    with Configurator(settings=settings) as config:
        # Coroutine views, and (aiopyramid.mode = greenlet in the ini) plain
        # code that runs in each request's greenlet on the event loop.
        config.include("aiopyramid")
        config.include("pyramid_jinja2")
        config.include(".routes")
        config.include(".models")
        # Forms carry a CSRF token (get_csrf_token() in the templates); it
        # is kept in a cookie, so no session is needed.
        config.set_csrf_storage_policy(CookieCSRFStoragePolicy())
        config.set_default_csrf_options(require_csrf=True)
        config.add_subscriber(add_renderer_globals, BeforeRender)
        config.scan(".views")
    return config.make_wsgi_app()
