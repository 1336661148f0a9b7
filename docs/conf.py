"""Sphinx configuration of the badges_bridge documentation.

The documentation is plain reStructuredText: no extension imports the package,
so the build needs neither Django nor edx-platform.
"""

import os
import re
from datetime import date

HERE = os.path.dirname(os.path.abspath(__file__))


def _read_version():
    """Read ``__version__`` from badges_bridge/__init__.py without importing it."""
    path = os.path.join(HERE, os.pardir, "badges_bridge", "__init__.py")
    with open(path, encoding="utf8") as handle:
        match = re.search(r"^__version__ = ['\"]([^'\"]*)['\"]", handle.read(), re.M)
    if not match:
        raise RuntimeError("Unable to find __version__ in badges_bridge/__init__.py")
    return match.group(1)


project = "badges_bridge"
author = "The badges_bridge maintainers"
copyright = f"{date.today().year}, {author}"  # noqa: A001 - Sphinx's name
release = _read_version()
version = ".".join(release.split(".")[:2])

extensions = []
templates_path = []
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
source_suffix = {".rst": "restructuredtext"}
root_doc = "index"
language = "en"
pygments_style = "sphinx"
nitpicky = False

html_theme = "sphinx_rtd_theme"
html_title = f"badges_bridge {release}"
html_static_path = []
html_show_sourcelink = False
html_theme_options = {
    "navigation_depth": 3,
    "collapse_navigation": False,
}
