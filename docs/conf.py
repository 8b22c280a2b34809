"""Sphinx configuration for aiopyramid's documentation."""

import os
import sys

sys.path.insert(0, os.path.abspath(".."))

# After the path: the checkout's own package, whose version the docs show.
import aiopyramid

project = "aiopyramid"
author = "the aiopyramid developers"
copyright = "2026, the aiopyramid developers"
release = aiopyramid.__version__  # stated once, in aiopyramid/__init__.py

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
]

intersphinx_mapping = {}  # no network here: references stay local
autodoc_member_order = "bysource"
autodoc_typehints = "description"
nitpicky = False
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
doctest_global_setup = """
import asyncio
import sys
"""
