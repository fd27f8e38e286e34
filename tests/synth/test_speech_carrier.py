"""The speech carrier of the synthetic world: eSpeak NG sentences whose pitch, formants and rate follow the
voice parameters, in several languages, through rooms and microphones; and worlds made with it."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf

from s2f.errors import S2FError
from s2f.synth import WorldSpec, speech, synthesize_world
from s2f.synth.channel import room_and_microphone
from s2f.synth.face_sources import default_cache_dir
from s2f.synth.speech import LANGUAGES, espeak_variant, speak
from s2f.synth.voice import VoiceParameters

RATE = 16_000


def voice(f0: float = 120.0, vtl: float = 16.0, rate: float = 4.5, pitch_range: float = 3.5) -> VoiceParameters:
    return VoiceParameters(f0, vtl, rate, 0.1, 0.5, 0.3, pitch_range_st=pitch_range)


def median_pitch(audio: np.ndarray) -> float:
    f0 = librosa.yin(audio.astype(np.float64), fmin=60, fmax=450, sr=RATE, frame_length=1024)
    level = librosa.feature.rms(y=audio.astype(np.float64), frame_length=1024, hop_length=256)[0][: f0.size]
    return float(np.median(f0[level > 0.3 * level.max()]))


def test_the_variant_file_follows_the_voice_parameters() -> None:
    def fields(params: VoiceParameters) -> dict[str, list[int]]:
        lines = [line.split() for line in espeak_variant(params).splitlines()]
        return {" ".join(p[:2]) if p[0] == "formant" else p[0]: [int(v) for v in p[1:] if v.isdigit()] for p in lines}

    low, high = fields(voice(f0=100.0)), fields(voice(f0=200.0))
    assert np.allclose(np.array(high["pitch"]) / np.array(low["pitch"]), 2.0, rtol=0.03)
    wide = fields(voice(pitch_range=5.0))["pitch"]
    narrow = fields(voice(pitch_range=2.0))["pitch"]
    assert wide[1] / wide[0] > narrow[1] / narrow[0] > 1.0
    short, long = fields(voice(vtl=14.0)), fields(voice(vtl=18.0))
    assert short["formant 1"][1] == round(100 * 17 / 14) and long["formant 1"][1] == round(100 * 17 / 18)
    assert fields(voice(rate=6.0))["speed"][0] > fields(voice(rate=3.5))["speed"][0]


def test_spoken_pitch_lands_on_the_voice_f0() -> None:
    targets = (95.0, 150.0, 230.0)
    measured = [median_pitch(speak(voice(f0=f0), 4.0, np.random.default_rng(i), room=False)) for i, f0 in
                enumerate(targets)]  # fmt: skip
    semitones = 12 * np.log2(np.array(measured) / np.array(targets))
    assert np.all(np.abs(semitones) < 2.0), semitones


def test_a_shorter_vocal_tract_raises_the_spectrum() -> None:
    def centroid(vtl: float, seed: int) -> float:
        audio = speak(voice(vtl=vtl), 4.0, np.random.default_rng(seed), room=False).astype(np.float64)
        power = np.abs(np.fft.rfft(audio)) ** 2
        frequency = np.fft.rfftfreq(audio.size, 1 / RATE)
        band = (frequency > 300) & (frequency < 4000)
        return float((frequency[band] * power[band]).sum() / power[band].sum())

    # The same sentences from a 14 and an 18 cm tract: formants scale by 18 / 14; the centroid, which also
    # holds the harmonics and the fricatives, by a little less (measured 1.13-1.25 over five clips).
    ratios = [centroid(14.0, seed) / centroid(18.0, seed) for seed in range(3)]
    assert min(ratios) > 1.08
    assert np.mean(ratios) == pytest.approx(18.0 / 14.0, rel=0.12)


def test_a_faster_speaker_says_the_same_words_in_less_time() -> None:
    text = "The old man walked slowly down to the river and sat on the bench by the water."

    def seconds(rate: float) -> float:
        return speech._engine().say(text, "en", espeak_variant(voice(rate=rate)), 0).size / RATE

    assert seconds(3.5) / seconds(6.0) == pytest.approx(6.0 / 3.5, rel=0.2)


def test_clips_are_deterministic_and_differ_between_clips() -> None:
    # A clip depends on its generator only, not on what the process said before it.
    first = speak(voice(), 2.0, np.random.default_rng(11))
    other = speak(voice(f0=200.0, vtl=14.0), 2.0, np.random.default_rng(12))
    again = speak(voice(), 2.0, np.random.default_rng(11))
    assert first.shape == (2 * RATE,) and first.dtype == np.float32
    assert np.array_equal(first, again)
    assert not np.allclose(first, other)
    assert len(LANGUAGES) >= 6


def test_the_room_keeps_length_and_adds_noise_and_reverberation() -> None:
    dry = np.zeros(RATE)
    dry[100] = 1.0  # a click: what follows it is the room's tail and the noise
    wet = room_and_microphone(dry, np.random.default_rng(0))
    assert wet.shape == dry.shape and np.isfinite(wet).all()
    assert np.abs(wet[RATE // 2 :]).max() > 0  # noise where the dry clip is silent


def test_missing_espeak_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "espeakng_loader", None)
    monkeypatch.setattr(speech, "_ENGINES", {})
    with pytest.raises(S2FError, match=r"pip install 's2f\[demo\]'"):
        speak(voice(), 1.0, np.random.default_rng(0))


@pytest.mark.network
def test_a_world_on_the_speech_carrier(tmp_path: Path) -> None:
    cache = default_cache_dir()
    cache = cache if (cache / "downloads").is_dir() else tmp_path / "face-sources"
    small = WorldSpec(identities=2, clips_per_identity=2, seconds=1.5, seed=1, media="wav")
    world = synthesize_world(
        tmp_path / "w", replace(small, carrier="speech"), workers=1, progress=False, cache_dir=cache
    )
    assert world.settings["carrier"] == "speech"
    clips = sorted(world.root.rglob("*.wav"))
    assert len(clips) == 4
    for clip in clips:
        samples, rate = sf.read(clip)
        assert rate == RATE and samples.shape == (24_000,) and 0.1 < np.abs(samples).max() <= 1.0
    with pytest.raises(S2FError, match="carrier"):
        synthesize_world(tmp_path / "w", small, workers=1, progress=False, cache_dir=cache)
    # Mixed: each clip on one carrier or the other, drawn from its seed.
    mixed = synthesize_world(
        tmp_path / "m", replace(small, carrier="mixed"), workers=1, progress=False, cache_dir=cache
    )
    assert mixed.settings["carrier"] == "mixed" and len(sorted(mixed.root.rglob("*.wav"))) == 4
    with pytest.raises(S2FError, match="carrier='whisper'"):
        synthesize_world(tmp_path / "x", replace(small, carrier="whisper"), cache_dir=cache)


@pytest.mark.network
def test_training_identities_can_speak_and_the_others_keep_the_carrier(tmp_path: Path) -> None:
    from s2f.prepare.run import resolve_splits
    from s2f.shards.format import DEFAULT_SPLIT_FRACTIONS

    cache = default_cache_dir()
    cache = cache if (cache / "downloads").is_dir() else tmp_path / "face-sources"
    small = WorldSpec(identities=12, clips_per_identity=1, seconds=1.0, seed=3, media="wav")
    plain = synthesize_world(tmp_path / "plain", small, workers=1, progress=False, cache_dir=cache)
    speaking = synthesize_world(
        tmp_path / "speaking", replace(small, train_speech_share=1.0), workers=1, progress=False, cache_dir=cache
    )
    assert "train_speech_share" not in plain.settings and speaking.settings["train_speech_share"] == 1.0
    # The identities that speak are those s2f prepare puts in train, as it splits them.
    tasks = speaking.tasks()
    resolve_splits(tasks, DEFAULT_SPLIT_FRACTIONS)
    splits = {task.speaker_id: task.split for task in tasks}
    assert set(splits.values()) >= {"train", "test"}
    for clip in sorted(speaking.root.rglob("*.wav")):
        twin = plain.root / clip.relative_to(speaking.root)
        same = clip.read_bytes() == twin.read_bytes()
        assert same == (splits[clip.relative_to(speaking.root).parts[0]] != "train"), clip
    # Extra spoken clips: training identities get one more, after their own, which keep their bytes.
    added = synthesize_world(
        tmp_path / "added", replace(small, train_speech_clips=1), workers=1, progress=False, cache_dir=cache
    )
    for speaker, split in splits.items():
        clips = sorted((added.root / speaker).rglob("*.wav"))
        own = sorted((plain.root / speaker).rglob("*.wav"))
        assert len(clips) == len(own) + (split == "train"), speaker
        assert {c.relative_to(added.root) for c in clips} >= {c.relative_to(plain.root) for c in own}
        for clip in own:
            assert clip.read_bytes() == (added.root / clip.relative_to(plain.root)).read_bytes()
    with pytest.raises(S2FError, match="train_speech_share"):
        synthesize_world(tmp_path / "plain", replace(small, train_speech_share=0.5), workers=1, cache_dir=cache)
    with pytest.raises(S2FError, match=r"train_speech_share=1\.5"):
        WorldSpec(train_speech_share=1.5)
    with pytest.raises(S2FError, match="train_speech_clips=-1"):
        WorldSpec(train_speech_clips=-1)
