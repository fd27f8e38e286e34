"""Speech as the world's voice: eSpeak NG says sentences in several languages with the speaker's voice.

The ``speech`` carrier keeps the documented face -> voice mapping (:func:`s2f.synth.voice.voice_parameters`)
and carries it on words instead of source-filter syllables. Each speaker becomes an eSpeak NG voice
variant (:func:`espeak_variant`, the table below); each clip says new sentences in one of eight
languages (:data:`WORDS`), through one of eSpeak's synthesisers, and then passes through a room
and a microphone (:func:`s2f.synth.channel.room_and_microphone`):

============== ==================================================================== ==================
parameter      eSpeak NG variant (``docs/synth.md``)                                 kept per
============== ==================================================================== ==================
f0_hz          ``pitch`` base and top (Hz), so that the spoken median lands near f0   identity, + a clip
                                                                                    offset (0.5 st sd)
pitch_range_st the same: base to top spans ``1.5 pitch_range_st`` semitones             identity
vtl_cm         ``formant 1-8``: frequencies at ``100 * 17 / vtl_cm`` per cent          identity
rate_hz        ``speed`` at ``100 * rate_hz / 4.5`` per cent                            identity
breathiness    ``breath`` on formants 1-8 at ``100 * breathiness``                      identity
nasality       ``formant 0`` (eSpeak's nasal formant) height ``40 + 150 nasality`` %    identity
brightness_db  ``formant 3-8`` heights times ``10 ** (brightness_db / 20)``             identity
open_quotient  a spectral tilt after synthesis: a share ``2 (oq - 0.4)`` low-passed     identity
============== ==================================================================== ==================

What varies from clip to clip and says nothing about the face: the words and their language, the
synthesiser (eSpeak's own or one of its Klatt variants), roughness, the room, the
microphone's band and the noise.

eSpeak NG and its data ship in the ``espeakng-loader`` wheel (``pip install 's2f[demo]'``); it runs
in-process through ctypes, about 50 times faster than real time.

Example:
    >>> import numpy as np
    >>> from s2f.synth.voice import VoiceParameters
    >>> params = VoiceParameters(f0_hz=120.0, vtl_cm=17.0, rate_hz=4.5, breathiness=0.1,
    ...                          open_quotient=0.5, nasality=0.3)
    >>> audio = speak(params, 2.0, np.random.default_rng(0))
    >>> audio.shape, audio.dtype, 0.1 < float(abs(audio).max()) <= 1.0
    ((32000,), dtype('float32'), True)
"""

from __future__ import annotations

import ctypes
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import scipy.signal

from s2f.errors import S2FError

from .channel import room_and_microphone
from .voice import REFERENCE_VTL_CM, SAMPLE_RATE, VoiceParameters

__all__ = ["LANGUAGES", "WORDS", "espeak_variant", "speak"]

# Common words per eSpeak NG language; a clip's sentences are random strings of them, so no two clips
# say the same thing and the voice, not the text, is what stays the same.
_VOCABULARY = {
    "en": "the a house water light morning city friend river window little green old new we you they went saw "
    "found took made every never always quickly slowly because after when under over people children "
    "evening garden bread music letter",
    "de": "der die das haus wasser licht morgen stadt freund fluss fenster klein gruen alt neu wir ihr sie ging sah "
    "fand nahm immer nie schnell langsam weil nach wenn unter ueber leute kinder abend garten brot musik",
    "fr": "le la les maison eau lumiere matin ville ami riviere fenetre petit vert vieux nouveau nous vous ils "
    "allait voyait trouvait prenait toujours jamais vite lentement parce que apres quand sous sur gens enfants "
    "soir jardin pain musique",
    "es": "el la los casa agua luz manana ciudad amigo rio ventana pequeno verde viejo nuevo nosotros ustedes "
    "ellos fue vio encontro tomo siempre nunca rapido despacio porque despues cuando bajo sobre gente ninos "
    "tarde jardin pan musica",
    "it": "il la le casa acqua luce mattina citta amico fiume finestra piccolo verde vecchio nuovo noi voi loro "
    "ando vide trovo prese sempre mai presto piano perche dopo quando sotto sopra gente bambini sera giardino "
    "pane musica",
    "pt": "o a os casa agua luz manha cidade amigo rio janela pequeno verde velho novo nos voces eles foi viu "
    "achou levou sempre nunca depressa devagar porque depois quando embaixo sobre gente criancas noite jardim "
    "pao musica",
    "nl": "de het huis water licht morgen stad vriend rivier raam klein groen oud nieuw wij jullie zij ging zag "
    "vond nam altijd nooit snel langzaam omdat na wanneer onder boven mensen kinderen avond tuin brood "
    "muziek",
    "pl": "dom woda swiatlo rano miasto przyjaciel rzeka okno maly zielony stary nowy my wy oni szedl widzial "
    "znalazl wzial zawsze nigdy szybko wolno poniewaz potem kiedy pod nad ludzie dzieci wieczor ogrod chleb "
    "muzyka",
}
WORDS = {language: tuple(text.split()) for language, text in _VOCABULARY.items()}
LANGUAGES = tuple(WORDS)
# eSpeak NG's synthesisers: 0 its own formant synthesiser, 1-4 variants of Klatt's.
_KLATT = (0, 0, 1, 2, 3, 4)
_ESPEAK_REFERENCE_WPM_SPEED = 4.5  # syllables/s of eSpeak at speed 100 %, the mapping's neutral rate
# eSpeak's spoken median pitch sits at about this share of the way (in semitones) from base to top
# (measured over 4 languages and 3 synthesisers at 100-200 Hz: 0.59 at a 3.75 st span, 0.72 at 6.75).
_PITCH_MEDIAN_SHARE = 0.65


def espeak_variant(params: VoiceParameters, *, pitch_offset_st: float = 0.0, klatt: int = 0, flutter: int = 0,
                   roughness: int = 2) -> str:  # fmt: skip
    """The eSpeak NG voice variant file that speaks with ``params`` (the module's table).

    Example:
        >>> from s2f.synth.voice import VoiceParameters
        >>> text = espeak_variant(VoiceParameters(100.0, 17.0, 4.5, 0.1, 0.5, 0.3))
        >>> [line for line in text.splitlines() if line.startswith(("pitch", "formant 1 "))]
        ['pitch 82 111', 'formant 1 100 100 100']
    """
    span = 1.5 * params.pitch_range_st
    median = params.f0_hz * 2.0 ** (pitch_offset_st / 12.0)
    base = median * 2.0 ** (-_PITCH_MEDIAN_SHARE * span / 12.0)
    top = base * 2.0 ** (span / 12.0)
    frequency = round(100.0 * REFERENCE_VTL_CM / params.vtl_cm)
    bright = 10.0 ** (params.brightness_db / 20.0)
    lines = [
        "language variant",
        "name s2f",
        f"pitch {round(base)} {round(top)}",
        f"formant 0 {frequency} {round(40 + 150 * params.nasality)} 100",
    ]
    for formant in range(1, 9):
        height = round(100 * (bright if formant >= 3 else 1.0))
        lines.append(f"formant {formant} {frequency} {height} 100")
    breath = round(100 * params.breathiness)
    lines += [
        f"speed {round(100 * params.rate_hz / _ESPEAK_REFERENCE_WPM_SPEED)}",
        "breath " + " ".join([str(breath)] * 8),
        "breathw 150 150 200 200 400 400 600 600",
        f"flutter {flutter}",
        f"roughness {roughness}",
    ]
    if klatt:
        lines.append(f"klatt {klatt}")
    return "\n".join(lines) + "\n"


def _sentences(language: str, words: int, rng: np.random.Generator) -> str:
    vocabulary = WORDS[language]
    parts, left = [], words
    while left > 0:
        count = min(left, int(rng.integers(3, 10)))
        sentence = " ".join(vocabulary[int(i)] for i in rng.integers(len(vocabulary), size=count))
        parts.append(sentence.capitalize() + str(rng.choice([".", ".", "?", "!", ","])))
        left -= count
    return " ".join(parts)


def _tilt(audio: np.ndarray, open_quotient: float) -> np.ndarray:
    """A smoother glottal pulse (larger open quotient) has a steeper spectral tilt: low-pass a share."""
    share = float(np.clip(2.0 * (open_quotient - 0.4), 0.0, 0.8))
    low = scipy.signal.sosfilt(scipy.signal.butter(1, 1200.0, fs=SAMPLE_RATE, output="sos"), audio)
    return (1.0 - share) * audio + share * low


def speak(params: VoiceParameters, seconds: float, rng: np.random.Generator, *, room: bool = True) -> np.ndarray:
    """Float32 audio at 16 kHz: sentences in a random language spoken with ``params``, in a room.

    Args:
        params: The speaker's voice.
        seconds: Length of the clip.
        rng: Draws everything that varies from clip to clip (words, language, synthesiser, room).
        room: Pass the voice through a random room and microphone (off: the dry voice, for measuring it).

    Raises:
        S2FError: eSpeak NG is not installed (``pip install 's2f[demo]'``).
    """
    samples = round(seconds * SAMPLE_RATE)
    language = LANGUAGES[int(rng.integers(len(LANGUAGES)))]
    variant = espeak_variant(
        params,
        pitch_offset_st=float(rng.normal(0.0, 0.5)),
        klatt=int(rng.choice(_KLATT)),
        flutter=0,  # eSpeak's flutter carries state from one utterance to the next: clips would depend on order
        roughness=int(rng.integers(0, 5)),
    )
    engine = _engine()
    words = max(4, round(seconds * 3.5))
    audio = np.zeros(0, np.float64)
    lead = int(rng.uniform(0.0, 0.3) * SAMPLE_RATE)
    while audio.size < samples + lead:
        said = engine.say(_sentences(language, words, rng), language, variant, int(rng.integers(2**31)))
        audio = np.concatenate([audio, said, np.zeros(int(rng.uniform(0.1, 0.4) * SAMPLE_RATE))])
    start = int(rng.integers(0, audio.size - samples + 1)) if rng.random() < 0.5 else 0
    clip = _tilt(audio[start : start + samples], params.open_quotient)
    if room:
        clip = room_and_microphone(clip, rng)
    peak = float(np.abs(clip).max()) or 1.0
    return (clip / peak * float(rng.uniform(0.35, 0.9))).astype(np.float32)


# --------------------------------------------------------------------------------------------- the engine


class _Espeak:
    """eSpeak NG from the ``espeakng-loader`` wheel, synchronous, in this process.

    Variants are read from a private copy of eSpeak's data folder (links to the wheel's files plus
    a writable ``voices/!v``), since eSpeak looks voice variants up by name in its data folder only.
    """

    _CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as error:
            raise S2FError(
                "the speech carrier needs eSpeak NG: pip install 's2f[demo]' (or espeakng-loader), "
                "or choose carrier='source-filter'"
            ) from error
        self.home = _private_data(Path(espeakng_loader.get_data_path()))
        self.library = ctypes.CDLL(espeakng_loader.get_library_path())
        self.library.espeak_Initialize.restype = ctypes.c_int
        self.rate = int(self.library.espeak_Initialize(2, 0, str(self.home).encode(), 0x8000))  # synchronous
        if self.rate <= 0:
            raise S2FError(f"{self.home}: eSpeak NG did not start (status {self.rate}); reinstall espeakng-loader")
        self._chunks: list[np.ndarray] = []
        self._callback = self._CALLBACK(self._collect)  # kept: eSpeak calls it for as long as it lives
        self.library.espeak_SetSynthCallback(self._callback)
        self._count = 0

    def _collect(self, wav: Any, count: int, _events: Any) -> int:
        if wav and count > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, (count,)).astype(np.float64) / 32768.0)
        return 0

    def say(self, text: str, language: str, variant: str, seed: int) -> np.ndarray:
        """``text`` in ``language`` with the ``variant`` file's voice, float64 at 16 kHz."""
        self._count += 1
        name = f"s2f-{os.getpid()}-{self._count}"
        path = self.home / "espeak-ng-data" / "voices" / "!v" / name
        path.write_text(variant)
        try:
            if self.library.espeak_SetVoiceByName(f"{language}+{name}".encode()) != 0:
                raise S2FError(f"eSpeak NG has no voice {language!r}; reinstall espeakng-loader")
        finally:
            path.unlink()
        self.library.espeak_ng_SetRandSeed(ctypes.c_long(seed))
        self._chunks = []
        encoded = text.encode()
        self.library.espeak_Synth(encoded, len(encoded) + 1, 0, 1, 0, 1, None, None)  # POS_CHARACTER, UTF-8
        self.library.espeak_Synchronize()
        audio = np.concatenate(self._chunks) if self._chunks else np.zeros(1)
        return scipy.signal.resample_poly(audio, SAMPLE_RATE // 50, self.rate // 50)


def _private_data(data: Path) -> Path:
    """A folder whose ``espeak-ng-data`` links to the wheel's data, with a writable ``voices/!v`` of our own.

    One per user and eSpeak installation; processes write their variants under names of their own.
    """
    import hashlib

    tag = hashlib.sha1(str(data.resolve()).encode()).hexdigest()[:12]
    home = Path(tempfile.gettempdir()) / f"s2f-espeak-{getattr(os, 'getuid', lambda: 0)()}-{tag}"
    if (home / "espeak-ng-data" / "voices" / "!v").is_dir():
        return home
    partial = home.with_name(f"{home.name}.{os.getpid()}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    (partial / "espeak-ng-data" / "voices" / "!v").mkdir(parents=True)
    for entry in data.iterdir():
        if entry.name != "voices":
            (partial / "espeak-ng-data" / entry.name).symlink_to(entry)
    for entry in (data / "voices").iterdir():
        if entry.name != "!v":
            (partial / "espeak-ng-data" / "voices" / entry.name).symlink_to(entry)
    try:
        partial.rename(home)
    except OSError:  # another process made it first
        shutil.rmtree(partial, ignore_errors=True)
    return home


_ENGINES: dict[int, _Espeak] = {}


def _engine() -> _Espeak:
    """This process's engine (a forked worker starts its own: eSpeak's state is per process)."""
    pid = os.getpid()
    if pid not in _ENGINES:
        _ENGINES[pid] = _Espeak()
    return _ENGINES[pid]
