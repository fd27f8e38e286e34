"""Frozen face teachers: face crop -> embedding (the voice encoder's target). Importing registers them."""

from .base import FaceTeacher
from .vggface import VGGFace

__all__ = ["FaceTeacher", "VGGFace"]
