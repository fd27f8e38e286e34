"""Voices whose physics follow the face: the documented face -> voice mapping and a source-filter synthesiser.

The mapping (:func:`voice_parameters`, the table in ``docs/synth.md``) turns a morph's gender score
``g`` (the blend-weighted mean of its sources' genders, 1 male, 0 female) and its landmark
measurements, as z-scores ``z_*`` against 300 morphs (:data:`PROPERTY_STATS`), into eight
physical parameters, each with its own per-identity noise ``e ~ N(0, 1)``:

============== ================================================================ ===================
parameter      formula                                                          typical range
============== ================================================================ ===================
f0_hz          ``210 * 2 ** ((-11 g - 1.0 z_jaw_width + 1.5 e) / 12)``          95-260 Hz
vtl_cm         ``14.5 + 2.5 g + 0.7 z_face_height + 0.5 e``                     13-18.5 cm
rate_hz        ``clip(4.5 + 0.4 z_mouth_width + 0.3 e, 3, 6.5)`` syllables/s     3.5-5.5
breathiness    ``clip(0.12 + 0.12 (1 - g) - 0.03 z_face_width + 0.03 e, 0, .5)`` 0.05-0.3
open_quotient  ``clip(0.5 + 0.12 (1 - g) + 0.04 e, 0.35, 0.8)``                 0.45-0.7
nasality       ``clip(0.3 + 0.15 z_nose_width + 0.05 e, 0, 0.8)``               0.1-0.6
pitch_range_st ``clip(3.5 + 0.8 z_intercanthal + 0.4 e, 1.5, 6)`` semitones     2.5-4.5
brightness_db  ``clip(3 z_brow_height + 1.5 e, -8, 8)`` above 2.5 kHz            -4-4
============== ================================================================ ===================

Formant frequencies scale as ``17 cm / vtl_cm`` (a uniform tube's resonances are inversely
proportional to its length; 17 cm is the adult male the vowel table was measured on). A larger open
quotient makes the glottal pulse smoother, so its spectrum falls faster (spectral tilt), and it closes more
gradually: above a corner of 250 Hz at the mean woman's 0.62 and 3.2 kHz at the mean man's 0.5
(:func:`return_phase_corner_hz`) the pulses lose another 6 dB per octave. The pitch
range scales intonation (declination and accents); brightness is a shelf gain on the upper
formants.

Each clip then varies within the identity (:func:`synthesize_speech`): its own syllable sequence
(consonant-vowel syllables over eight vowels and six consonant classes), phrases with pauses,
falling intonation with pitch accents, a pitch offset of about half a semitone, slow drift and
loudness.

Example:
    >>> import numpy as np
    >>> params = VoiceParameters(f0_hz=120.0, vtl_cm=17.0, rate_hz=4.5, breathiness=0.1,
    ...                          open_quotient=0.5, nasality=0.3)
    >>> audio = synthesize_speech(params, 1.0, np.random.default_rng(0))
    >>> audio.shape, audio.dtype, float(abs(audio).max()) <= 1.0
    ((16000,), dtype('float32'), True)
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass

import numpy as np
import scipy.signal

__all__ = [
    "PROPERTY_STATS",
    "SAMPLE_RATE",
    "VoiceParameters",
    "return_phase_corner_hz",
    "synthesize_speech",
    "voice_parameters",
]

SAMPLE_RATE = 16_000
REFERENCE_VTL_CM = 17.0
_FADE = int(0.012 * SAMPLE_RATE)  # syllable fade in and out, samples

# (F1-F7) in Hz of an adult male: F1-F3 from Peterson & Barney 1952 (i, I, E, ae, a, o, U, u); F4-F7 a
# 17 cm uniform tube's (3.5, 4.5, 5.5, 6.5 kHz). The higher formants are what keeps real speech bright
# between 1 and 4 kHz: a cascade that stopped at F4 fell 13-16 dB per octave there, where recorded speech
# falls about 8 (`python benchmarks/own_voice.py spectrum`), and real men's brighter voices were then
# heard as women's. Those scaled above 0.45 of the sample rate are left out (:func:`_resonators`).
VOWELS = np.array(
    [
        (270, 2290, 3010, 3500, 4500, 5500, 6500),
        (390, 1990, 2550, 3500, 4500, 5500, 6500),
        (530, 1840, 2480, 3500, 4500, 5500, 6500),
        (660, 1720, 2410, 3500, 4500, 5500, 6500),
        (730, 1090, 2440, 3500, 4500, 5500, 6500),
        (570, 840, 2410, 3500, 4500, 5500, 6500),
        (440, 1020, 2240, 3500, 4500, 5500, 6500),
        (300, 870, 2240, 3500, 4500, 5500, 6500),
    ],
    dtype=np.float64,
)
BANDWIDTHS = np.array([70.0, 100.0, 140.0, 200.0, 250.0, 300.0, 350.0])
# Consonant classes: (kind, low Hz, high Hz, relative level). Fricatives and bursts are shaped
# noise; nasals are voiced murmur; the level is relative to the vowel.
CONSONANTS = (
    ("fricative", 3800.0, 7600.0, 0.25),  # s
    ("fricative", 2200.0, 5000.0, 0.25),  # sh
    ("fricative", 900.0, 7000.0, 0.08),  # f
    ("plosive", 1500.0, 6000.0, 0.5),  # t, k
    ("plosive", 300.0, 2500.0, 0.5),  # p, b
    ("nasal", 0.0, 0.0, 0.4),  # m, n
)

# Mean and standard deviation of each face measurement over 300 morphs' shapes (seed 1, drawn before
# morphs kept to one gender), in inter-ocular distances (see s2f.synth.morph.face_properties): the
# z-scores' reference. Fixed numbers, so a world's voices do not depend on which morphs it drew.
PROPERTY_STATS = {
    "face_height": (2.18, 0.17),
    "face_width": (2.27, 0.10),
    "jaw_width": (1.87, 0.09),
    "nose_width": (0.475, 0.046),
    "mouth_width": (0.96, 0.06),
    "intercanthal": (0.612, 0.022),
    "brow_height": (0.362, 0.07),
}


@dataclass(frozen=True)
class VoiceParameters:
    """The physical parameters of one speaker's voice.

    Attributes:
        f0_hz: Mean fundamental frequency.
        vtl_cm: Vocal-tract length; formants scale as ``17 / vtl_cm``.
        rate_hz: Syllables per second.
        breathiness: Share of aspiration noise in the glottal source, 0-1.
        open_quotient: Open fraction of the glottal cycle (larger: steeper spectral tilt).
        nasality: Strength of the nasal resonance and anti-resonance, 0-1.
        pitch_range_st: Size of the intonation movements, in semitones.
        brightness_db: Gain of the spectrum above 2.5 kHz.
    """

    f0_hz: float
    vtl_cm: float
    rate_hz: float
    breathiness: float
    open_quotient: float
    nasality: float
    pitch_range_st: float = 3.5
    brightness_db: float = 0.0

    @property
    def formant_scale(self) -> float:
        return REFERENCE_VTL_CM / self.vtl_cm

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _z(properties: dict[str, float], name: str) -> float:
    mean, std = PROPERTY_STATS[name]
    return (properties[name] - mean) / std


def voice_parameters(gender_score: float, properties: dict[str, float], rng: np.random.Generator) -> VoiceParameters:
    """The documented face -> voice mapping (the module's table), with per-identity noise from ``rng``.

    Args:
        gender_score: 1 male ... 0 female (the blend-weighted mean of the sources' genders).
        properties: :func:`s2f.synth.morph.face_properties` of the morph's landmarks.
        rng: Draws the eight noise terms, in the table's order.

    Example:
        >>> from s2f.synth.voice import PROPERTY_STATS
        >>> average = {name: mean for name, (mean, _) in PROPERTY_STATS.items()}
        >>> male = voice_parameters(1.0, average, np.random.default_rng(0))
        >>> female = voice_parameters(0.0, average, np.random.default_rng(0))
        >>> male.f0_hz < female.f0_hz and male.vtl_cm > female.vtl_cm
        True
    """
    g = float(np.clip(gender_score, 0.0, 1.0))
    e = rng.standard_normal(8)
    return VoiceParameters(
        f0_hz=float(210.0 * 2.0 ** ((-11.0 * g - 1.0 * _z(properties, "jaw_width") + 1.5 * e[0]) / 12.0)),
        vtl_cm=float(14.5 + 2.5 * g + 0.7 * _z(properties, "face_height") + 0.5 * e[1]),
        rate_hz=float(np.clip(4.5 + 0.4 * _z(properties, "mouth_width") + 0.3 * e[2], 3.0, 6.5)),
        breathiness=float(np.clip(0.12 + 0.12 * (1 - g) - 0.03 * _z(properties, "face_width") + 0.03 * e[3], 0, 0.5)),
        open_quotient=float(np.clip(0.5 + 0.12 * (1 - g) + 0.04 * e[4], 0.35, 0.8)),
        nasality=float(np.clip(0.3 + 0.15 * _z(properties, "nose_width") + 0.05 * e[5], 0.0, 0.8)),
        pitch_range_st=float(np.clip(3.5 + 0.8 * _z(properties, "intercanthal") + 0.4 * e[6], 1.5, 6.0)),
        brightness_db=float(np.clip(3.0 * _z(properties, "brow_height") + 1.5 * e[7], -8.0, 8.0)),
    )


# --------------------------------------------------------------------------------------------- synthesis


def _glottal_source(f0: np.ndarray, open_quotient: float) -> np.ndarray:
    """Rosenberg glottal flow pulses at the instantaneous pitch ``f0``, differentiated (lip radiation)."""
    phase = np.cumsum(f0) / SAMPLE_RATE % 1.0
    opening = 0.7 * open_quotient
    flow = np.where(
        phase < opening,
        0.5 * (1.0 - np.cos(np.pi * phase / opening)),
        np.where(phase < open_quotient, np.cos(0.5 * np.pi * (phase - opening) / (open_quotient - opening)), 0.0),
    )
    return np.diff(flow, prepend=0.0) * (SAMPLE_RATE / 200.0)


def return_phase_corner_hz(open_quotient: float) -> float:
    """Where the glottal pulses start to lose 6 dB per octave more: 250 Hz at the mean woman's open quotient
    (0.62), 3.2 kHz at the mean man's (0.5), log-linear between and clipped to 150-8000 Hz."""
    return float(np.clip(250.0 * (3200.0 / 250.0) ** ((0.62 - open_quotient) / 0.12), 150.0, 8000.0))


def _return_phase(pulses: np.ndarray, open_quotient: float) -> np.ndarray:
    """The pulses through a first-order low-pass at :func:`return_phase_corner_hz`, at their own loudness.

    A Rosenberg pulse closes abruptly, so its spectrum keeps its highs whatever the open quotient; a real
    glottis that stays open longer also closes more gradually (the LF model's return phase), and its source
    loses its highs above a corner that falls as the open quotient rises. Without it the world's women were
    6-10 dB brighter above 1 kHz than recorded women (``python benchmarks/own_voice.py spectrum``). The
    aspiration noise is left as it is: tilting it too blurred the world's speakers (docs/synth.md).
    """
    pole = np.exp(-2 * np.pi * return_phase_corner_hz(open_quotient) / SAMPLE_RATE)
    tilted = scipy.signal.lfilter([1.0 - pole], [1.0, -pole], pulses)
    return tilted * np.sqrt(np.mean(pulses**2) / max(float(np.mean(tilted**2)), 1e-20))


def _resonators(formants: np.ndarray, bandwidths: np.ndarray) -> np.ndarray:
    """A cascade of two-pole resonators as second-order sections, unit gain at 0 Hz."""
    sections = []
    for frequency, bandwidth in zip(formants, bandwidths, strict=True):
        if frequency >= 0.45 * SAMPLE_RATE:
            continue
        radius = np.exp(-np.pi * bandwidth / SAMPLE_RATE)
        a1, a2 = -2.0 * radius * np.cos(2 * np.pi * frequency / SAMPLE_RATE), radius**2
        sections.append([1.0 + a1 + a2, 0.0, 0.0, 1.0, a1, a2])
    return np.array(sections)


def _plan(seconds: float, rate_hz: float, rng: np.random.Generator) -> list[tuple[float, float, int, int]]:
    """Syllables ``(start s, duration s, vowel, consonant or -1)`` in phrases separated by pauses."""
    syllables, time = [], float(rng.uniform(0.05, 0.25))
    while time < seconds:
        phrase_end = time + float(rng.uniform(1.0, 2.4))
        while time < min(phrase_end, seconds):
            duration = float(rng.uniform(0.7, 1.3)) / rate_hz
            consonant = int(rng.integers(len(CONSONANTS))) if rng.random() < 0.75 else -1
            syllables.append((time, duration, int(rng.integers(len(VOWELS))), consonant))
            time += duration
        time += float(rng.uniform(0.15, 0.45))  # a pause between phrases
    return syllables


def _pitch_contour(
    params: VoiceParameters, samples: int, syllables: list[tuple[float, float, int, int]], rng: np.random.Generator
) -> np.ndarray:
    """f0 per sample: the clip's offset, declination over each phrase, accents, slow drift and jitter."""
    time = np.arange(samples) / SAMPLE_RATE
    semitones = np.full(samples, float(rng.normal(0.0, 0.5)))
    semitones += 0.4 * np.sin(2 * np.pi * float(rng.uniform(0.1, 0.3)) * time + float(rng.uniform(0, 6.3)))
    starts = [s for s, _, _, _ in syllables]
    gaps = [i for i in range(1, len(syllables)) if starts[i] - (starts[i - 1] + syllables[i - 1][1]) > 1e-6]
    for first, last in zip([0, *gaps], [*gaps, len(syllables)], strict=True):
        begin, end = starts[first], syllables[last - 1][0] + syllables[last - 1][1]
        span = (time >= begin) & (time < end)
        range_st = params.pitch_range_st
        semitones[span] += range_st * (0.43 - (time[span] - begin) / max(end - begin, 1e-3))  # declination
        accent = syllables[int(rng.integers(first, last))]
        semitones += 0.57 * range_st * np.exp(-0.5 * ((time - accent[0] - accent[1] / 2) / (accent[1] / 2.5)) ** 2)
    semitones += 0.08 * rng.standard_normal(samples).cumsum() / np.sqrt(np.arange(1, samples + 1))
    return params.f0_hz * 2.0 ** (semitones / 12.0)


@functools.lru_cache(maxsize=64)
def _band_pass(low: float, high: float) -> np.ndarray:
    """A second-order Butterworth band-pass as second-order sections, designed once per band: a speaker's
    consonants repeat a handful of bands, and designing one took longer than filtering with it."""
    return scipy.signal.butter(2, [low, high], btype="band", fs=SAMPLE_RATE, output="sos")  # sosfilt only reads it


def _add_consonant(
    output: np.ndarray,
    voice: np.ndarray,
    noise: np.ndarray,
    lo: int,
    hi: int,
    consonant: tuple[str, float, float, float],
    scale: float,
) -> int:
    """Adds a syllable's onset consonant at sample ``lo`` into ``output``; returns where its vowel starts.

    A syllable too short to hold the consonant and a vowel keeps only its vowel.
    """
    kind, low, high, level = consonant
    length = int((0.06 if kind != "plosive" else 0.035) * SAMPLE_RATE)
    if hi - lo - length < 4 * _FADE:
        return lo
    onset = lo + length
    if kind == "nasal":
        murmur = scipy.signal.sosfilt(_resonators(np.array([250.0 * scale]), np.array([100.0])), voice[lo:onset])
        output[lo:onset] += murmur * level * np.hanning(length)
    else:
        burst = scipy.signal.sosfilt(_band_pass(low * min(scale, 1.1), high), noise[lo:onset]) * level
        if kind == "plosive":  # a closure, then a short burst
            burst[: length // 2] = 0.0
        output[lo:onset] += burst * np.hanning(length)
    return onset


def synthesize_speech(params: VoiceParameters, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Speech-like float32 audio at 16 kHz: CV syllables in phrases from a source-filter voice.

    Args:
        params: The speaker's voice.
        seconds: Length of the clip.
        rng: Draws everything that varies from clip to clip (syllables, intonation, loudness).
    """
    samples = round(seconds * SAMPLE_RATE)
    syllables = _plan(seconds, params.rate_hz, rng)
    f0 = _pitch_contour(params, samples, syllables, rng)
    voice = _glottal_source(f0, params.open_quotient)
    voice = _return_phase(voice, params.open_quotient)
    # Aspiration noise, pulsed with the glottal cycle as breathy voices are.
    noise = rng.standard_normal(samples)
    voice = (1 - params.breathiness) * voice + params.breathiness * noise * (0.4 + np.abs(voice).clip(0, 1))
    scale = params.formant_scale
    output = np.zeros(samples)
    nasal_pole = _resonators(np.array([250.0 * scale]), np.array([100.0]))
    for start, duration, vowel, consonant in syllables:
        lo = int(start * SAMPLE_RATE)
        hi = min(samples, int((start + duration) * SAMPLE_RATE))
        if hi - lo < 4 * _FADE:
            continue
        onset = lo if consonant < 0 else _add_consonant(output, voice, noise, lo, hi, CONSONANTS[consonant], scale)
        formants = VOWELS[vowel] * scale * float(rng.uniform(0.96, 1.04))
        sos = _resonators(formants, BANDWIDTHS)
        segment = scipy.signal.sosfilt(sos, voice[onset:hi])
        if params.nasality > 0:
            notch_b, notch_a = scipy.signal.iirnotch(min(1000.0 * scale, 3000.0), 3.0, fs=SAMPLE_RATE)
            nasal = scipy.signal.lfilter(notch_b, notch_a, segment)
            segment = (1 - params.nasality) * segment + params.nasality * (
                nasal + 0.5 * scipy.signal.sosfilt(nasal_pole, voice[onset:hi])
            )
        envelope = np.ones(hi - onset)
        ramp = min(_FADE, (hi - onset) // 2)
        envelope[:ramp] = np.linspace(0.0, 1.0, ramp)
        envelope[-ramp:] = np.linspace(1.0, 0.0, ramp)
        output[onset:hi] += segment * envelope * float(rng.uniform(0.7, 1.0))
    if params.brightness_db:
        # A first-order high shelf at 2.5 kHz: split off the highs and scale them.
        low = scipy.signal.sosfilt(scipy.signal.butter(1, 2500.0, fs=SAMPLE_RATE, output="sos"), output)
        output = low + (output - low) * 10.0 ** (params.brightness_db / 20.0)
    output += 1e-3 * noise[::-1]  # a faint room floor, so pauses are not digital silence
    peak = float(np.abs(output).max()) or 1.0
    return (output / peak * float(rng.uniform(0.35, 0.6))).astype(np.float32)
