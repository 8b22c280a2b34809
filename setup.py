"""Packaging for aiopyramid."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent

setup(
    name="aiopyramid",
    version="1.0.0.dev0",
    description="Run Pyramid applications on asyncio: coroutine views, websockets, "
    "gunicorn, uWSGI and ASGI servers.",
    long_description=(HERE / "README.rst").read_text(encoding="utf-8"),
    long_description_content_type="text/x-rst",
    license="BSD-3-Clause",
    python_requires=">=3.10",
    packages=find_packages(include=["aiopyramid", "aiopyramid.*"]),
    package_data={"aiopyramid": ["py.typed"]},
    include_package_data=True,
    zip_safe=False,
    install_requires=["pyramid>=2.0", "greenlet>=3"],
    extras_require={
        "testing": [
            "pytest>=8",
            "pytest-cov>=5",
            "coverage[toml]>=7.4",
            "webtest>=3",
            "sqlalchemy[asyncio]>=2",
            "hypothesis>=6",
        ],
    },
    classifiers=[
        "Framework :: Pyramid",
        "Framework :: AsyncIO",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Topic :: Internet :: WWW/HTTP :: WSGI",
    ],
)
