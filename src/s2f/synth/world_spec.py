"""What a synthetic world holds (:class:`WorldSpec`), apart from where and how fast it is written.

:func:`s2f.synth.synthesize_world` takes one; ``s2f synth`` builds it from its options, and the
world's ``world.json`` records its fields, so the same spec in the same folder finds the same world.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from typing import Any

from s2f._compat.moved import REMOVED_IN
from s2f.errors import ConfigError

__all__ = ["CARRIERS", "MEDIA", "WorldSpec", "spec_from"]

MEDIA = ("mp4", "wav")
# How a voice's parameters become sound: "speech" (eSpeak NG sentences in eight languages, in rooms:
# s2f.synth.speech), "source-filter" (consonant-vowel syllables without words: s2f.synth.voice), or
# "mixed" (each clip one or the other, drawn from the clip's seed).
CARRIERS = ("speech", "source-filter", "mixed")


@dataclass(frozen=True)
class WorldSpec:
    """What a world holds: everything ``world.json`` records, so the same spec gives the same files.

    Attributes:
        identities: Number of people.
        clips_per_identity: Clips per person, each a new view and a new sentence.
        seconds: Length of every clip.
        seed: Everything follows from it: the same seed gives the same files.
        test_fraction: Share of identities held out as VoxCeleb's ``test`` set (the rest: ``dev``).
        media: ``"mp4"`` (picture and sound in one file) or ``"wav"`` (wav + same-stem jpg).
        carrier: What carries each voice's parameters: ``"speech"`` (eSpeak NG sentences in eight
            languages, through rooms and microphones; :mod:`s2f.synth.speech`) or ``"source-filter"``
            (syllables without words; :mod:`s2f.synth.voice`), or ``"mixed"`` (each clip either, by its
            seed). The face -> voice mapping is the same.
        train_speech_share: Share of the *training* identities' clips whose voice is carried on speech
            (the ``speech`` carrier, in rooms) instead of ``carrier``; the validation and test identities
            keep ``carrier``, so the world's figures are measured on it alone. A training identity is one
            that ``s2f prepare`` puts in the train split at its default fractions (0.8 / 0.1 of the
            ``dev`` set); with other fractions some validation identities speak too. 0 (the default)
            draws nothing, so worlds made before it keep their bytes.
        train_speech_clips: Clips that each training identity speaks (the ``speech`` carrier, in rooms) on
            top of its ``clips_per_identity``; val and test identities get none. Unlike
            ``train_speech_share`` the world's own clips all stay.
        sources: Which of the photos shipped in packages to morph, by name
            (``s2f.synth.face_sources.PHOTO_SOURCES``), or ``public-domain`` for the four whose
            licence lets the world's faces be published; default: all thirteen.

    Example:
        >>> WorldSpec(identities=60, clips_per_identity=2, seconds=3.0).seconds
        3.0
        >>> WorldSpec(seconds=0.1)
        Traceback (most recent call last):
        ...
        s2f.errors.ConfigError: seconds=0.1: clip length must be between 0.5 and 60 s
    """

    identities: int = 300
    clips_per_identity: int = 3
    seconds: float = 6.0
    seed: int = 0
    test_fraction: float = 0.2
    media: str = "mp4"
    carrier: str = "source-filter"
    sources: tuple[str, ...] | None = None
    train_speech_share: float = 0.0
    train_speech_clips: int = 0

    def __post_init__(self) -> None:
        """Refuses settings no world can be made with, before anything is written."""
        if self.identities < 2 or self.clips_per_identity < 1:
            raise ConfigError(
                f"identities={self.identities}, clips={self.clips_per_identity}: need at least 2 identities and 1 clip"
            )
        if not 0.5 <= self.seconds <= 60.0:
            raise ConfigError(f"seconds={self.seconds}: clip length must be between 0.5 and 60 s")
        if not 0.0 <= self.test_fraction < 1.0:
            raise ConfigError(f"test_fraction={self.test_fraction}: must be in [0, 1)")
        if self.media not in MEDIA:
            raise ConfigError(f"media={self.media!r}: choose one of {list(MEDIA)}")
        if self.carrier not in CARRIERS:
            raise ConfigError(f"carrier={self.carrier!r}: choose one of {list(CARRIERS)}")
        if not 0.0 <= self.train_speech_share <= 1.0:
            raise ConfigError(f"train_speech_share={self.train_speech_share}: must be in [0, 1]")
        if self.train_speech_clips < 0:
            raise ConfigError(f"train_speech_clips={self.train_speech_clips}: must be 0 or more")


def spec_from(world: WorldSpec | None, legacy: dict[str, Any]) -> WorldSpec:
    """The spec to make: ``world``, with the keywords of s2f 0.1 (``identities=...``) laid over it."""
    world = world or WorldSpec()
    if not legacy:
        return world
    unknown = set(legacy) - set(WorldSpec.__dataclass_fields__)
    if unknown:
        raise TypeError(f"synthesize_world() got unexpected keyword arguments {sorted(unknown)}")
    warnings.warn(
        f"synthesize_world({', '.join(f'{k}=' for k in legacy)}...) is deprecated and will be removed in "
        f"{REMOVED_IN}; pass world=WorldSpec(...) instead",
        DeprecationWarning,
        stacklevel=3,
    )
    fields: dict[str, Any] = {k: tuple(v) if k == "sources" and v is not None else v for k, v in legacy.items()}
    return replace(world, **fields)
