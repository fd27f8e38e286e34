"""A teacher given by name (plus an optional weights file) or as a built module: the one place that builds it.

Training systems, ``s2f prepare`` and the evaluation's second networks all take a teacher either as a
registry name with ``weights`` beside it, or as a module built already (from a recipe's ``init_args``).
"""

from __future__ import annotations

from typing import overload

from ..errors import ConfigError
from .face_teacher import TEACHERS, FaceTeacher

__all__ = ["build_teacher"]


@overload
def build_teacher(teacher: FaceTeacher | str, weights: str | None = None) -> FaceTeacher: ...


@overload
def build_teacher(teacher: None, weights: str | None = None) -> None: ...


def build_teacher(teacher: FaceTeacher | str | None, weights: str | None = None) -> FaceTeacher | None:
    """The teacher registered as ``teacher`` (built with ``weights`` when given), or ``teacher`` itself
    (``None`` for a system that takes no teacher).

    Raises:
        ConfigError: When ``weights`` is given with a teacher that is built already or with none (its
            weights belong in its own arguments), or the name is not registered.
        WeightsError: When the weights file cannot be read as the teacher's weights.

    Example:
        >>> build_teacher("dlib_resnet_tiny").embed_dim > 0
        True
        >>> build_teacher(build_teacher("dlib_resnet_tiny"), weights="vgg.pth")
        Traceback (most recent call last):
        ...
        s2f.errors.ConfigError: teacher_weights only applies to a teacher given by name; put weights in its init_args
    """
    if isinstance(teacher, str):
        return TEACHERS.create(teacher, **({"weights": weights} if weights else {}))
    if weights:
        raise ConfigError("teacher_weights only applies to a teacher given by name; put weights in its init_args")
    return teacher
