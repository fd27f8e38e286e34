"""Lightning training systems. The only place (with the CLI) where s2f imports Lightning."""

from .system import Speech2FaceSystem

__all__ = ["Speech2FaceSystem"]
