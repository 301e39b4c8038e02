"""Package discovery for the two source folders; every other setting is in pyproject.toml.

`plugins/` installs as `harness_plugins` (a top-level `plugins` would clash in
site-packages), which pyproject's `packages.find` cannot express: it finds packages under
their folder's name. Here every folder with an `__init__.py` is found and renamed."""

from setuptools import find_packages, setup

PLUGINS = ["harness_plugins", *(f"harness_plugins.{name}" for name in sorted(find_packages("plugins")))]

setup(packages=[*sorted(find_packages(include=["harness", "harness.*"])), *PLUGINS])
