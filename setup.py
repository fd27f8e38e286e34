"""Where the package's files come from; everything else about the build is in pyproject.toml.

The training recipes live in ``recipes/`` at the repository root, where the docs and the tests name
them, and ship inside the wheel as ``s2f/recipes/*.yaml``: one copy, mapped into the package here,
because pyproject.toml's package discovery cannot add a folder from outside ``src/``.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages("src"), "s2f.recipes"],
    package_dir={"": "src", "s2f.recipes": "recipes"},
)
