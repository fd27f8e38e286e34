"""The synthetic audio-visual world: identities, their clips as real media, and VoxCeleb-style manifests.

Every identity is a morph of real face photos (:mod:`.morph`) with a voice whose physics follow
its face (:mod:`.voice`). Each clip shows a jittered view of the face (scale, shift, roll,
brightness) in a 640x360 frame and says a new sentence. The world is written as VoxCeleb lays its
files out, so ``s2f prepare --voxceleb ROOT --voxceleb-meta META`` reads it unchanged::

    OUT/voxceleb/id00001/<video id>/00001.mp4     (or 00001.wav + 00001.jpg)
    OUT/vox_meta.csv                              VoxCeleb1's tab-separated meta (Gender, Nationality, Set)
    OUT/identities.csv                            per identity: face properties, voice parameters, sources
    OUT/world.json                                the settings, to refuse mixing two worlds in one folder

Everything is drawn from ``numpy.random.default_rng([seed, identity, stream])``, so a world is the
same whatever the number of worker processes, and a rerun skips the clips that exist.
"""

from __future__ import annotations

import base64
import csv
import functools
import hashlib
import json
import os
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from s2f._atomic import atomic_open
from s2f.errors import S2FError
from s2f.prepare.worker_processes import worker_context

from .face_sources import SourceBank, load_bank
from .morph import Morpher, MorphSpec, face_properties
from .video import write_mp4, write_wav_jpg
from .voice import SAMPLE_RATE, VoiceParameters, synthesize_speech, voice_parameters
from .world_spec import WorldSpec, spec_from

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["FRAME_SIZE", "IdentitySpec", "SynthWorld", "WorldSpec", "synthesize_world"]

FRAME_SIZE = (640, 360)
# 5: the clips' sound is coded by FFmpeg's fast AAC coder (same voices, other bytes). 6: vowels carry
# formants F5-F7 as a tube does, so voices are as bright between 1 and 4 kHz as recorded speech. 7: the glottal
# pulses lose their highs above a corner that falls with the open quotient (the return phase), so the world's
# women are as dark above 1 kHz as recorded women.
WORLD_VERSION = 7
# Streams of each identity's random generator.
_IDENTITY, _CLIP = 0, 1
_NATIONALITY = "Synthetic"


@dataclass(frozen=True)
class IdentitySpec:
    """One synthetic person: the face, the voice, and how clips frame them.

    Attributes:
        index: Position in the world (0-based).
        speaker_id: VoxCeleb-style id (``id00001``).
        split: ``"dev"`` or ``"test"`` (VoxCeleb's Set column).
        morph: Blend weights and landmarks of the face.
        gender_score: Blend-weighted mean of the sources' genders (1 male, 0 female).
        properties: Face measurements (:func:`~s2f.synth.morph.face_properties`).
        voice: The voice's physical parameters.
        backdrop: Two RGB colours of the background gradient.
        position: Face center in the frame, as fractions of width and height.
    """

    index: int
    speaker_id: str
    split: str
    morph: MorphSpec
    gender_score: float
    properties: dict[str, float]
    voice: VoiceParameters
    backdrop: tuple[tuple[int, ...], tuple[int, ...]]
    position: tuple[float, float]

    @property
    def gender(self) -> str:
        return "m" if self.gender_score >= 0.5 else "f"


@dataclass
class SynthWorld:
    """A synthetic world on disk.

    Attributes:
        out_dir: The folder holding everything.
        settings: What it was made with (identities, clips, seconds, seed, ...).
        seconds_taken: Wall time of the run that returned this object (0 when opened).

    Example:
        >>> world = SynthWorld(Path("worlds/demo"))
        >>> world.root.as_posix(), world.meta_csv.name, world.identities_csv.name
        ('worlds/demo/voxceleb', 'vox_meta.csv', 'identities.csv')
    """

    out_dir: Path
    settings: dict[str, Any] = field(default_factory=dict)
    seconds_taken: float = 0.0

    @property
    def root(self) -> Path:
        """The VoxCeleb-style folder for ``s2f prepare --voxceleb``."""
        return self.out_dir / "voxceleb"

    @property
    def meta_csv(self) -> Path:
        """VoxCeleb1-style meta CSV for ``--voxceleb-meta``."""
        return self.out_dir / "vox_meta.csv"

    @property
    def identities_csv(self) -> Path:
        """Per-identity face properties and voice parameters."""
        return self.out_dir / "identities.csv"

    def tasks(self) -> list[Any]:
        """The clips as ``s2f prepare`` lists them (:func:`s2f.prepare.sources.scan_voxceleb`)."""
        from s2f.prepare.sources import scan_voxceleb

        return scan_voxceleb(self.root, self.meta_csv)

    def identities(self) -> list[dict[str, str]]:
        """The rows of :attr:`identities_csv`."""
        with open(self.identities_csv, newline="") as handle:
            return list(csv.DictReader(handle))

    @classmethod
    def open(cls, out_dir: str | os.PathLike[str]) -> SynthWorld:
        """A world written before."""
        folder = Path(out_dir)
        settings_path = folder / "world.json"
        if not settings_path.is_file():
            raise S2FError(f"{folder}: no synthetic world here (world.json missing); make one with s2f synth --out")
        return cls(folder, json.loads(settings_path.read_text()))


# --------------------------------------------------------------------------------------------- drawing


def _video_id(seed: int, identity: int, clip: int) -> str:
    """An 11-character YouTube-like id, stable for the seed."""
    digest = hashlib.sha1(f"s2f-synth/{seed}/{identity}/{clip}".encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()[:11]


def draw_identities(morpher: Morpher, count: int, seed: int, test_fraction: float) -> list[IdentitySpec]:
    """The world's identities; a held-out ``test_fraction`` of them (at least one) is the test set."""
    order = np.random.default_rng([seed, count]).permutation(count)
    held_out = max(1, round(test_fraction * count)) if test_fraction > 0 else 0
    test = set(order[:held_out].tolist())
    genders = morpher.bank.genders
    specs = []
    for index in range(count):
        rng = np.random.default_rng([seed, index, _IDENTITY])
        morph = morpher.draw(rng)
        gender_score = float(morph.weights @ genders)
        properties = face_properties(morph.shape)
        voice = voice_parameters(gender_score, properties, rng)
        first, second = (tuple(int(v) for v in colour) for colour in rng.integers(30, 220, size=(2, 3)))
        specs.append(
            IdentitySpec(
                index=index,
                speaker_id=f"id{index + 1:05d}",
                split="test" if index in test else "dev",
                morph=morph,
                gender_score=gender_score,
                properties=properties,
                voice=voice,
                backdrop=(first, second),
                position=(float(rng.uniform(0.35, 0.65)), float(rng.uniform(0.47, 0.53))),
            )
        )
    return specs


# --------------------------------------------------------------------------------------------- rendering


@functools.cache
def _feathered_square(size: int, ramp: int) -> np.ndarray:
    """An alpha mask, 255 inside and falling to 0 over ``ramp`` pixels at the edges."""
    axis = np.minimum(np.arange(size), np.arange(size)[::-1]).astype(np.float64)
    edge = np.clip(axis / ramp, 0.0, 1.0)
    return (255.0 * np.minimum.outer(edge, edge)).astype(np.uint8)


def render_backdrop(spec: IdentitySpec) -> np.ndarray:
    """The identity's background: a two-colour gradient with fixed grain, float32 [360, 640, 3]."""
    width, height = FRAME_SIZE
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    mix = (0.6 * xx / width + 0.4 * yy / height)[..., None]
    first, second = (np.array(c, np.float32) for c in spec.backdrop)
    grain = (
        np.random.default_rng([spec.index, *spec.backdrop[0]]).normal(0.0, 3.0, (height, width, 1)).astype(np.float32)
    )
    return first * (1 - mix) + second * mix + grain


def render_view(face: np.ndarray, backdrop: np.ndarray, spec: IdentitySpec, rng: np.random.Generator) -> np.ndarray:
    """One clip's frame: the morph placed on the backdrop with jittered scale, shift, roll and light."""
    from PIL import Image

    width, height = FRAME_SIZE
    size = face.shape[0]
    scale = 1.2 * float(rng.uniform(0.92, 1.08))
    angle = np.deg2rad(float(rng.normal(0.0, 3.0)))
    center = np.array([spec.position[0] * width, spec.position[1] * height]) + rng.normal(0.0, 10.0, 2)
    brightness = float(rng.uniform(0.88, 1.12))
    # PIL wants the frame -> morph affine: rotate and scale about the morph's center.
    a, b = np.cos(angle) / scale, np.sin(angle) / scale
    middle = (size - 1) / 2.0
    coefficients = (a, b, middle - a * center[0] - b * center[1], -b, a, middle + b * center[0] - a * center[1])
    # The alpha rides along as a fourth channel, so one resampling places both.
    rgba = np.dstack([face, _feathered_square(size, size // 10)])
    placed = Image.fromarray(rgba, "RGBA").transform(
        FRAME_SIZE, Image.Transform.AFFINE, coefficients, Image.Resampling.BILINEAR
    )
    pixels = np.asarray(placed, np.float32)
    weight = pixels[..., 3:] * np.float32(1.0 / 255.0)
    frame = (weight * pixels[..., :3] + (1 - weight) * backdrop) * np.float32(brightness)
    return np.clip(frame + 0.5, 0, 255).astype(np.uint8)


def _clip_path(root: Path, spec: IdentitySpec, clip: int, seed: int, media: str) -> Path:
    return root / spec.speaker_id / _video_id(seed, spec.index, clip) / f"{clip + 1:05d}.{media}"


# Worker state: set by _init_worker, in this process and in each worker.
_STATE: dict[str, Any] = {}


def _init_worker(bank: SourceBank | None) -> None:
    if "morpher" not in _STATE and bank is not None:
        _STATE["morpher"] = Morpher(bank)


def _trains(spec: IdentitySpec) -> bool:
    """Whether ``s2f prepare`` at its default split fractions puts this identity in the train split."""
    from ..shards.format import DEFAULT_SPLIT_FRACTIONS, assign_split

    # prepare splits the dev set train : val at its default fractions, computed as it computes them.
    train, val, _ = DEFAULT_SPLIT_FRACTIONS
    dev_split = (train / (train + val), val / (train + val), 0.0)
    return spec.split == "dev" and assign_split(spec.speaker_id, dev_split) == "train"


def _voice_of(
    carrier: str, rng: np.random.Generator, speech_share: float = 0.0
) -> Callable[[VoiceParameters, float, np.random.Generator], np.ndarray]:
    """The synthesiser of one clip; with ``speech_share``, the clip speaks with that chance whatever ``carrier`` is."""
    if speech_share > 0.0:
        carrier = "speech" if rng.random() < speech_share else carrier
    if carrier == "mixed":
        carrier = "speech" if rng.random() < 0.5 else "source-filter"
    if carrier == "speech":
        from .speech import speak

        return speak
    return synthesize_speech


def _render_identity(job: tuple[IdentitySpec, Path, WorldSpec]) -> int:
    """Writes the missing clips of one identity; returns how many it wrote."""
    spec, root, world = job
    trains = (world.train_speech_share > 0.0 or world.train_speech_clips > 0) and _trains(spec)
    speech_share = world.train_speech_share if trains else 0.0
    # A training identity's extra clips come after the world's own, so those keep their seeds and bytes.
    clips = world.clips_per_identity + (world.train_speech_clips if trains else 0)
    paths = [_clip_path(root, spec, clip, world.seed, world.media) for clip in range(clips)]
    missing = [clip for clip, path in enumerate(paths) if not path.is_file()]
    if not missing:
        return 0
    face = _STATE["morpher"].render(spec.morph)
    backdrop = render_backdrop(spec)
    for clip in missing:
        rng = np.random.default_rng([world.seed, spec.index, _CLIP, clip])
        frame = render_view(face, backdrop, spec, rng)
        if clip < world.clips_per_identity:
            voice = _voice_of(world.carrier, rng, speech_share)
        else:
            voice = _voice_of("speech", rng)
        audio = voice(spec.voice, world.seconds, rng)
        paths[clip].parent.mkdir(parents=True, exist_ok=True)
        (write_mp4 if world.media == "mp4" else write_wav_jpg)(paths[clip], frame, audio, SAMPLE_RATE)
    return len(missing)


# --------------------------------------------------------------------------------------------- manifests


def _write_csv(path: Path, rows: list[dict[str, Any]], delimiter: str = ",") -> None:
    with atomic_open(path, newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), delimiter=delimiter, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _identity_row(spec: IdentitySpec, names: list[str]) -> dict[str, Any]:
    weights = spec.morph.weights
    blend = ";".join(f"{names[i]}:{weights[i]:.3f}" for i in np.argsort(-weights) if weights[i] >= 0.005)
    row: dict[str, Any] = {
        "speaker_id": spec.speaker_id,
        "split": spec.split,
        "gender": spec.gender,
        "gender_score": f"{spec.gender_score:.4f}",
    }
    row.update({name: f"{value:.4f}" for name, value in spec.properties.items()})
    row.update({name: f"{value:.4f}" for name, value in spec.voice.as_dict().items()})
    row["formant_scale"] = f"{spec.voice.formant_scale:.4f}"
    row["dominant_source"] = names[spec.morph.dominant]
    row["sources"] = blend
    return row


def _meta_row(spec: IdentitySpec) -> dict[str, str]:
    return {
        "VoxCeleb1 ID": spec.speaker_id,
        "VGGFace1 ID": f"Synth_{spec.index + 1:05d}",
        "Gender": spec.gender,
        "Nationality": _NATIONALITY,
        "Set": spec.split,
    }


# --------------------------------------------------------------------------------------------- entry point


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _check_settings(out_dir: Path, settings: dict[str, Any]) -> None:
    path = out_dir / "world.json"
    if path.is_file():
        before = json.loads(path.read_text())
        if before != settings:
            changed = sorted(k for k in set(before) | set(settings) if before.get(k) != settings.get(k))
            raise S2FError(
                f"{out_dir}: holds a synthetic world made with other settings ({', '.join(changed)} differ); "
                "give another --out or delete the folder"
            )


def _progress(items: Iterator[int], total: int, enabled: bool) -> Iterator[int]:
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return iter(tqdm(items, total=total, desc="s2f synth", unit="identity"))


def synthesize_world(
    out_dir: str | os.PathLike[str],
    world: WorldSpec | None = None,
    *,
    photos: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    progress: bool = True,
    **legacy: Any,
) -> SynthWorld:
    """Writes a synthetic audio-visual world (or completes one that was interrupted) and returns it.

    Args:
        out_dir: Folder to write into (created).
        world: What the world holds (its size, clip length, seed, media, carrier and source photos);
            default ``WorldSpec()``.
        photos: A folder of extra frontal face photos to morph.
        cache_dir: Where the source photos and their aligned bank are cached
            (default ``$S2F_CACHE/face-sources`` or ``~/.cache/s2f/face-sources``).
        workers: Processes rendering identities (default: the CPU cores available).
        progress: Show a progress bar.
        legacy: The keywords of s2f 0.1 (``identities=``, ``seed=``, ...): still accepted, with a
            DeprecationWarning, as the fields of ``world`` they name.

    Raises:
        S2FError: Bad settings, or ``out_dir`` holds a world made with other settings.

    Example:
        >>> world = synthesize_world("worlds/quick", WorldSpec(identities=60, clips_per_identity=2,
        ...                                                    seconds=3.0))      # doctest: +SKIP
        >>> len(world.tasks())                                                    # doctest: +SKIP
        120
    """
    spec = spec_from(world, legacy)
    if spec.carrier != "source-filter" or spec.train_speech_share > 0.0 or spec.train_speech_clips > 0:
        from .speech import _engine

        _engine()  # eSpeak NG missing: say so once, here, rather than in every worker
    began = time.perf_counter()
    folder = Path(out_dir)
    bank = load_bank(cache_dir, photos=photos, sources=spec.sources)
    settings = {
        "version": WORLD_VERSION,
        "identities": spec.identities,
        "clips_per_identity": spec.clips_per_identity,
        "seconds": spec.seconds,
        "seed": spec.seed,
        "test_fraction": spec.test_fraction,
        "media": spec.media,
        "sources": list(bank.names),
        "frame_size": list(FRAME_SIZE),
        "sample_rate": SAMPLE_RATE,
    }
    if spec.carrier != "source-filter":  # worlds made before carriers existed keep their settings
        settings["carrier"] = spec.carrier
    if spec.train_speech_share > 0.0:  # likewise for worlds made before it
        settings["train_speech_share"] = spec.train_speech_share
    if spec.train_speech_clips > 0:
        settings["train_speech_clips"] = spec.train_speech_clips
    _check_settings(folder, settings)
    made = SynthWorld(folder, settings)
    made.root.mkdir(parents=True, exist_ok=True)
    (folder / "world.json").write_text(json.dumps(settings, indent=1) + "\n")

    _STATE.clear()
    _init_worker(bank)
    people = draw_identities(_STATE["morpher"], spec.identities, spec.seed, spec.test_fraction)
    _write_csv(made.identities_csv, [_identity_row(person, bank.names) for person in people])
    _write_csv(made.meta_csv, [_meta_row(person) for person in people], delimiter="\t")

    jobs = [(person, made.root, spec) for person in people]
    _render_all(jobs, workers, progress, bank)
    made.seconds_taken = time.perf_counter() - began
    return made


def _render_all(
    jobs: list[tuple[IdentitySpec, Path, WorldSpec]],
    workers: int | None,
    progress: bool,
    bank: SourceBank,
) -> None:
    """Renders every identity's clips, in this process or in a pool of ``workers`` processes."""
    count = max(1, min(workers if workers is not None else _cores(), len(jobs)))
    if count == 1:
        for _ in _progress(map(_render_identity, jobs), len(jobs), progress):
            pass
    else:
        # Each worker gets the bank itself (2 MB, pickled), never rebuilding it, and is never forked from this
        # process (s2f.prepare.worker_processes).
        with ProcessPoolExecutor(
            count, mp_context=worker_context(), initializer=_init_worker, initargs=(bank,)
        ) as pool:
            for _ in _progress(pool.map(_render_identity, jobs, chunksize=4), len(jobs), progress):
                pass
