"""Commands that run outside the server (see pyproject.toml's [project.scripts])."""
