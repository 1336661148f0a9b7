"""Package metadata for openedx-badges-bridge."""

import os
import re

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def get_version(*file_paths):
    """Read __version__ from a file without importing it."""
    with open(os.path.join(HERE, *file_paths), encoding="utf8") as handle:
        match = re.search(r"^__version__ = ['\"]([^'\"]*)['\"]", handle.read(), re.M)
    if not match:
        raise RuntimeError("Unable to find version string.")
    return match.group(1)


def load_requirements(*requirements_paths):
    """Loose requirements from .in files, honouring the -c constraint files they name."""
    requirements = {}
    constraint_files = set()
    pattern = re.compile(r"^[a-zA-Z0-9_.\[\]-]+")

    def add(spec):
        match = pattern.match(spec)
        if match:
            name = re.sub(r"\[.*\]", "", match.group(0)).lower()
            requirements[name] = spec

    for path in requirements_paths:
        with open(os.path.join(HERE, path), encoding="utf8") as reqs:
            for line in reqs:
                line = line.split("#", 1)[0].strip()
                if line.startswith("-c"):
                    constraint_files.add(os.path.join(os.path.dirname(path), line[2:].strip()))
                elif line and not line.startswith("-"):
                    add(line)
    for path in constraint_files:
        with open(os.path.join(HERE, path), encoding="utf8") as constraints:
            for line in constraints:
                line = line.split("#", 1)[0].strip()
                match = pattern.match(line)
                if match:
                    name = match.group(0).lower()
                    # The platform provides these; their pins only keep the test environments installable.
                    if name in requirements and name not in ("openedx-events", "djangorestframework"):
                        requirements[name] = line
    return sorted(requirements.values())


def read(name):
    """The text of a file beside this one."""
    with open(os.path.join(HERE, name), encoding="utf8") as handle:
        return handle.read()


VERSION = get_version("badges_bridge", "__init__.py")

setup(
    name="openedx-badges-bridge",
    version=VERSION,
    description="Award Credly and Accredible badges automatically from Open edX learning events.",
    long_description=read("README.rst") + "\n\n" + read("CHANGELOG.rst"),
    long_description_content_type="text/x-rst",
    author="The badges_bridge maintainers",
    license="AGPL-3.0",
    packages=find_packages(include=["badges_bridge", "badges_bridge.*"], exclude=["*tests"]),
    include_package_data=True,
    install_requires=load_requirements("requirements/base.in"),
    python_requires=">=3.11",
    zip_safe=False,
    keywords="Python edx openedx badges credly accredible",
    entry_points={
        "lms.djangoapp": ["badges_bridge = badges_bridge.apps:BadgesBridgeConfig"],
        "cms.djangoapp": ["badges_bridge = badges_bridge.apps:BadgesBridgeConfig"],
        "openedx.course_app": ["badges_bridge = badges_bridge.course_app:BadgesCourseApp"],
    },
    classifiers=[
        "Development Status :: 3 - Alpha",
        "Framework :: Django",
        "Framework :: Django :: 4.2",
        "Framework :: Django :: 5.2",
        "Intended Audience :: Developers",
        "Natural Language :: English",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
    ],
)
