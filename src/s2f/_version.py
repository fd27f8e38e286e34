"""The installed package's version, in one place (read by the package, saved models and shard manifests)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("s2f")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
