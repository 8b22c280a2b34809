"""Packaging for aiopyramid."""

import ast
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def read_version() -> str:
    """``__version__`` of aiopyramid/__init__.py, read without importing it.

    The package's one statement of its version: importing the package here
    would need its dependencies before they are installed.
    """
    source = HERE / "aiopyramid" / "__init__.py"
    for node in ast.parse(source.read_text(encoding="utf-8")).body:
        if (
            isinstance(node, ast.Assign)
            and [getattr(target, "id", None) for target in node.targets]
            == ["__version__"]
            and isinstance(node.value, ast.Constant)
        ):
            return str(node.value.value)
    raise RuntimeError(
        f'{source} has no `__version__ = "..."` line: put the version there, '
        "as a plain string."
    )


setup(
    name="aiopyramid",
    version=read_version(),
    description="Run Pyramid applications on asyncio: coroutine views, websockets, "
    "gunicorn, uWSGI and ASGI servers.",
    long_description=(HERE / "README.rst").read_text(encoding="utf-8"),
    long_description_content_type="text/x-rst",
    license="BSD-3-Clause",
    python_requires=">=3.10",
    packages=[
        *find_packages(include=["aiopyramid", "aiopyramid.*"]),
        "aiopyramid.scaffolds",
    ],
    # The scaffolds live at the top of the repository and install inside the
    # package, so that `pcreate` finds them in a wheel.
    package_dir={"aiopyramid.scaffolds": "scaffolds"},
    package_data={
        "aiopyramid": ["py.typed"],
        "aiopyramid.scaffolds": [
            "*/cookiecutter.json",
            "*/*/.*",  # a project's dotfiles (.gitignore), which "*" skips
            "*/*/*",
            "*/*/*/*",
            "*/*/*/*/*",
            "*/*/*/*/*/*",
        ],
    },
    exclude_package_data={"aiopyramid.scaffolds": ["*.pyc"]},
    zip_safe=False,
    install_requires=["pyramid>=2.0", "greenlet>=3", "jinja2>=3"],
    entry_points={
        "console_scripts": ["pcreate = aiopyramid.pcreate:main"],
        # pserve's `use = egg:aiopyramid#granian` in [server:main].
        "paste.server_runner": ["granian = aiopyramid._granian:serve_granian"],
    },
    extras_require={
        "testing": [
            "pytest>=8",
            "pytest-cov>=5",
            "coverage[toml]>=7.10",
            "webtest>=3",
            "sqlalchemy[asyncio]>=2",
            "hypothesis>=6",
            "cookiecutter>=2",
            "gunicorn>=27",
            "gunicorn-h1c>=0.6.10",
            "uvicorn>=0.30",
            "httptools>=0.6",
            "hypercorn>=0.17",
            "granian>=2.8",
            "httpx>=0.27",
            "h11>=0.14",
            "h2>=4.1",
            "websockets>=13",
            "uvloop>=0.19",
            "playwright>=1.40",
            "pyramid_jinja2>=2.10",
            "aiosqlite>=0.20",
            "pyramid_debugtoolbar>=4.10",
            "pyramid_tm>=2.5",
            "zope.sqlalchemy>=3",
            "transaction>=4",
            "pyramid_retry>=2.1",
            "pyramid_exclog>=1.1",
            "cryptography>=42",
            "redis>=5",
            "asyncpg>=0.29",
            "psycopg[binary]>=3.2",
            # The observability tests' real SDKs.  OpenTelemetry's SQLAlchemy
            # instrumentation (0.66b1) refuses SQLAlchemy 2.1, so it is left out.
            "opentelemetry-sdk>=1.45,<2",
            "opentelemetry-instrumentation-pyramid>=0.66b1",
            "opentelemetry-instrumentation-asyncio>=0.66b1",
            "opentelemetry-instrumentation-httpx>=0.66b1",
            "sentry-sdk>=2.75,<3",
        ],
        "gunicorn": ["gunicorn>=27", "gunicorn-h1c>=0.6.10", "websockets>=13"],
        "granian": ["granian>=2.8"],
        "uvloop": ["uvloop>=0.19"],
        "uwsgi": ["websockets>=13"],
        "redis": ["redis>=5"],
    },
    classifiers=[
        "Framework :: Pyramid",
        "Framework :: AsyncIO",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
        "Topic :: Internet :: WWW/HTTP :: WSGI",
    ],
)
