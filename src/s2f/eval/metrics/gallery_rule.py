"""The one rule for which face stands for a speaker, and the one check that two embedding spaces match.

``s2f eval``'s retrieval gallery and ``s2f serve``'s gallery both hold one face per speaker: the
teacher embedding of the speaker's clip with the smallest clip id (:func:`wins_gallery_place`), so a
face the server shows as a neighbour is the face the evaluation ranked. Both refuse shards whose teacher
is not the model's (:func:`check_same_teacher`): embeddings of different face networks are not comparable.

Example:
    >>> chosen = {}
    >>> for clip, speaker in [("c2", "s"), ("c1", "s"), ("d9", "t")]:
    ...     if wins_gallery_place(clip, chosen.get(speaker)):
    ...         chosen[speaker] = clip
    >>> chosen
    {'s': 'c1', 't': 'd9'}
"""

from __future__ import annotations

from ...errors import ConfigError

__all__ = ["check_same_teacher", "wins_gallery_place"]


def wins_gallery_place(clip_id: str, holder: str | None) -> bool:
    """Whether ``clip_id`` takes its speaker's gallery place from the clip id ``holder`` (None: no holder yet)."""
    return holder is None or clip_id < holder


def check_same_teacher(
    source: object,
    shards_teacher: str | None,
    model_teacher: str | None,
    *,
    fix: str,
    dims: tuple[int, int] | None = None,
) -> None:
    """Refuses shards whose embeddings come from another teacher (or size) than the model predicts.

    Args:
        source: The shard root, named first in the error line.
        shards_teacher: The teacher the shards' manifest records ('' or None when unrecorded: not checked).
        model_teacher: The teacher the model predicts ('' or None when unknown: not checked).
        fix: What to do instead, the end of the error line.
        dims: ``(shards' embedding size, model's)``, checked first when given.

    Raises:
        ConfigError: One line naming ``source``, both teachers (or sizes) and ``fix``.

    Example:
        >>> check_same_teacher("shards", "vggface", "vggface", fix="-")
        >>> check_same_teacher("shards", "vggface", "arcface", fix="prepare them again")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        s2f.errors.ConfigError: shards: the shards hold 'vggface' embeddings but ... 'arcface' ones; prepare them again
    """
    if dims is not None and dims[0] != dims[1]:
        raise ConfigError(
            f"{source}: the shards hold {dims[0]}-D {shards_teacher!r} embeddings but the model predicts "
            f"{dims[1]}-D ones; {fix}"
        )
    if shards_teacher and model_teacher and shards_teacher != model_teacher:
        raise ConfigError(
            f"{source}: the shards hold {shards_teacher!r} embeddings but the model predicts {model_teacher!r} ones; "
            f"{fix}"
        )
