"""The package's version, in one place.

pyproject.toml reads it from here when the wheel is built, and the package, ``s2f --version``,
saved models and shard manifests read it from here at run time, so a source checkout that was
never installed reports the same version as the wheel built from it.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
