"""The page for URLs that lead nowhere."""

from pyramid.view import notfound_view_config


@notfound_view_config(renderer="{{ cookiecutter.package_name }}:templates/404.jinja2")
def notfound_view(request):
    """Answer 404 with a page that says so (and why, if a factory said)."""
    request.response.status = 404
    return {"message": getattr(request.exception, "message", "")}
