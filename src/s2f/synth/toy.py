"""A toy audio-visual corpus with a known voice-face link, written as real wav + jpg files.

It exists so that the whole system can be exercised on any machine in seconds (tests, the
quick demo); it is not a stand-in for real speech or real faces.

Each speaker has hidden traits in [0, 1]. Their face is drawn from them (face width, skin tone,
eye spacing, mouth width) and their voice from the same traits, by the synthetic world's
source-filter synthesiser (:mod:`s2f.synth.voice`): pitch from face width, vocal-tract length (so
the formants) from mouth width, with its own syllables and intonation per clip. A model that hears
the voice can therefore learn something about the face, and clips of one speaker differ from each
other.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image, ImageDraw

from .voice import REFERENCE_VTL_CM, SAMPLE_RATE, VoiceParameters, synthesize_speech

__all__ = ["draw_face", "make_toy_corpus", "speaker_traits", "synthesize_voice", "voice_of"]


def speaker_traits(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0.0, 1.0, size=4)


def draw_face(traits: np.ndarray, rng: np.random.Generator, size: int = 224) -> Image.Image:
    width, tone, eyes, mouth = traits
    background = tuple(int(v) for v in rng.integers(20, 60, size=3))
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    center = size / 2 + rng.normal(0, 2, size=2)
    half_w, half_h = size * (0.25 + 0.12 * width), size * 0.38
    skin = (int(120 + 120 * tone), int(80 + 110 * tone), int(60 + 100 * tone))
    draw.ellipse([center[0] - half_w, center[1] - half_h, center[0] + half_w, center[1] + half_h], fill=skin)
    spacing = size * (0.08 + 0.08 * eyes)
    for side in (-1, 1):
        x, y = center[0] + side * spacing, center[1] - size * 0.08
        draw.ellipse([x - 9, y - 6, x + 9, y + 6], fill=(250, 250, 250))
        draw.ellipse([x - 4, y - 4, x + 4, y + 4], fill=(40, 30, 20))
    mouth_half = size * (0.05 + 0.1 * mouth)
    draw.rectangle(
        [center[0] - mouth_half, center[1] + 0.17 * size, center[0] + mouth_half, center[1] + 0.2 * size],
        fill=(150, 40, 50),
    )
    return image


def voice_of(traits: np.ndarray) -> VoiceParameters:
    """The voice of a toy speaker: wider faces speak lower, wider mouths have shorter vocal tracts."""
    width, _, _, mouth = traits
    return VoiceParameters(
        f0_hz=90.0 + 160.0 * (1.0 - width),
        vtl_cm=REFERENCE_VTL_CM / (0.85 + 0.3 * mouth),  # formants scale inversely with vocal-tract length
        rate_hz=4.5,
        breathiness=0.1,
        open_quotient=0.5,
        nasality=0.2,
    )


def synthesize_voice(traits: np.ndarray, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A clip of the toy speaker with ``traits``, from the synthetic world's source-filter voice."""
    return synthesize_speech(voice_of(traits), seconds, rng)


def make_toy_corpus(
    root: Path, speakers: int = 12, clips_per_speaker: int = 4, seed: int = 0, held_out: int = 2
) -> Path:
    """Writes ``root/{speaker}/clip{i}.wav`` + ``face{i}.jpg`` and ``root/pairs.csv``; returns the CSV.

    The CSV has the columns ``build_shards_from_pairs`` reads: speaker_id, audio, face, split, gender.

    The last ``2 * held_out`` speakers are assigned to val and test explicitly, so that even a
    small corpus has every split.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for speaker in range(speakers):
        traits = speaker_traits(rng)
        folder = root / f"id{speaker:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        for clip in range(clips_per_speaker):
            face = folder / f"face{clip}.jpg"
            draw_face(traits, rng).save(face, quality=92)
            seconds = float(rng.choice([2.5, 4.0, 6.0, 7.0]))
            audio = folder / f"clip{clip}.wav"
            sf.write(audio, synthesize_voice(traits, seconds, rng), SAMPLE_RATE, subtype="PCM_16")
            split = "train" if speaker < speakers - 2 * held_out else "val" if speaker < speakers - held_out else "test"
            rows.append(
                {
                    "speaker_id": folder.name,
                    "audio": f"{folder.name}/{audio.name}",
                    "split": split,
                    "face": f"{folder.name}/{face.name}",
                    "gender": "f" if traits[0] < 0.5 else "m",
                }
            )
    manifest = root / "pairs.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return manifest
