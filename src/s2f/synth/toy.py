"""A toy audio-visual corpus with a known voice-face link, written as real wav + jpg files.

It exists so that the whole system can be exercised on any machine in seconds (tests, the
quick demo); it is not a stand-in for real speech or real faces.

Each speaker has hidden traits in [0, 1]. Their face is drawn from them (face width, skin tone,
eye spacing, mouth width) and their voice is synthesised from the same traits: a glottal pulse
train at a trait-dependent pitch through formant resonators scaled by a trait-dependent vocal
tract length, with random vowels and syllable timing per clip. A model that hears the voice can
therefore learn something about the face, and clips of one speaker differ from each other.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import scipy.signal
import soundfile as sf
from PIL import Image, ImageDraw

SAMPLE_RATE = 16_000
VOWEL_FORMANTS = [(730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480), (570, 840, 2410)]


__all__ = ["draw_face", "make_toy_corpus", "synthesize_voice"]


def speaker_traits(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0.0, 1.0, size=4)


def draw_face(traits: np.ndarray, rng: np.random.Generator, size: int = 224) -> Image.Image:
    width, tone, eyes, mouth = traits
    background = tuple(int(v) for v in rng.integers(20, 60, size=3))
    image = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(image)
    centre = size / 2 + rng.normal(0, 2, size=2)
    half_w, half_h = size * (0.25 + 0.12 * width), size * 0.38
    skin = (int(120 + 120 * tone), int(80 + 110 * tone), int(60 + 100 * tone))
    draw.ellipse([centre[0] - half_w, centre[1] - half_h, centre[0] + half_w, centre[1] + half_h], fill=skin)
    spacing = size * (0.08 + 0.08 * eyes)
    for side in (-1, 1):
        x, y = centre[0] + side * spacing, centre[1] - size * 0.08
        draw.ellipse([x - 9, y - 6, x + 9, y + 6], fill=(250, 250, 250))
        draw.ellipse([x - 4, y - 4, x + 4, y + 4], fill=(40, 30, 20))
    mouth_half = size * (0.05 + 0.1 * mouth)
    draw.rectangle(
        [centre[0] - mouth_half, centre[1] + 0.17 * size, centre[0] + mouth_half, centre[1] + 0.2 * size],
        fill=(150, 40, 50),
    )
    return image


def synthesize_voice(traits: np.ndarray, seconds: float, rng: np.random.Generator) -> np.ndarray:
    width, _, _, mouth = traits
    f0 = 90.0 + 160.0 * (1.0 - width)  # wider faces speak lower here
    tract_scale = 0.85 + 0.3 * mouth  # formants scale inversely with vocal-tract length
    samples = round(seconds * SAMPLE_RATE)
    time = np.arange(samples) / SAMPLE_RATE
    pitch = f0 * (1 + 0.05 * np.sin(2 * np.pi * rng.uniform(0.5, 2.0) * time)) * (1 + 0.01 * rng.standard_normal())
    phase = np.cumsum(pitch) / SAMPLE_RATE
    source = 2 * (phase % 1.0) - 1.0  # a sawtooth: a crude glottal pulse train
    syllable = 0.18 + 0.1 * rng.random()
    output = np.zeros(samples)
    for start in np.arange(0.0, seconds, syllable):
        lo, hi = int(start * SAMPLE_RATE), min(samples, int((start + syllable) * SAMPLE_RATE))
        segment = source[lo:hi] + 0.02 * rng.standard_normal(hi - lo)
        voiced = np.zeros(hi - lo)
        for formant in VOWEL_FORMANTS[rng.integers(len(VOWEL_FORMANTS))]:
            centre = formant * tract_scale
            b, a = scipy.signal.iirpeak(centre, Q=8.0, fs=SAMPLE_RATE)
            voiced += scipy.signal.lfilter(b, a, segment)
        output[lo:hi] = voiced * np.hanning(hi - lo)
    output += 0.003 * rng.standard_normal(samples)
    return (0.5 * output / np.abs(output).max()).astype(np.float32)


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
