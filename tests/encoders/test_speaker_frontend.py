"""The pretrained speaker front end (GE2E from resemblyzer's wheel) and its trainable head.

Against the reference: the mel features equal librosa's, and the d-vector equals resemblyzer's own
``embed_utterance`` on a vowel sequence made here. As a model: the head learns a voice -> face link
while the front end stays frozen, and a saved model reloads without resemblyzer.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.signal import lfilter

import s2f.encoders.speaker_frontend as speaker_frontend
from s2f import ENCODERS, Speech2Face
from s2f.audio import SpectrogramFrontend
from s2f.cli import main
from s2f.encoders.speaker_frontend import SpeakerFrontendEncoder, partial_starts
from s2f.errors import MissingExtraError, WeightsError
from s2f.model.inference import InferenceSettings

RATE = 16_000
# (F1, F2, F3) of /a/, /i/, /u/, /e/, /o/ for an adult male vocal tract; scaled for other speakers.
VOWELS = ((730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480), (570, 840, 2410))
HAS_GE2E = importlib.util.find_spec("resemblyzer") is not None
needs_ge2e = pytest.mark.skipif(not HAS_GE2E, reason="resemblyzer's GE2E weights: pip install 's2f[train]'")


def vowels(seconds: float, f0: float, tract: float = 1.0, *, seed: int = 0, dbfs: float = -20.0) -> np.ndarray:
    """A source-filter vowel sequence at an RMS level of ``dbfs``: a jittered glottal pulse train at ``f0``
    through three formant resonators, a new vowel every 120-300 ms, the formants scaled by ``1 / tract``."""
    rng = np.random.default_rng(seed)
    out = []
    while sum(len(part) for part in out) < seconds * RATE:
        samples = int(rng.uniform(0.12, 0.3) * RATE)
        pitch = f0 * (1 + 0.08 * np.sin(np.linspace(0, rng.uniform(1, 4), samples)))
        pulses = np.diff(np.floor(np.cumsum(pitch / RATE)), prepend=0.0) + 0.01 * rng.standard_normal(samples)
        sound = lfilter([1.0], [1.0, -0.95], pulses)  # glottal roll-off
        for formant in VOWELS[rng.integers(len(VOWELS))]:
            radius, angle = np.exp(-np.pi * 90 / RATE), 2 * np.pi * formant / tract / RATE
            sound = lfilter([1 - radius], [1.0, -2 * radius * np.cos(angle), radius**2], sound)
        out.append(sound * np.hanning(samples) ** 0.3)
    wave = np.concatenate(out)[: int(seconds * RATE)]
    return (wave / np.sqrt(np.mean(wave**2)) * 10 ** (dbfs / 20)).astype(np.float32)


def spectrogram(encoder: SpeakerFrontendEncoder, waves: np.ndarray | torch.Tensor) -> torch.Tensor:
    return SpectrogramFrontend(**encoder.frontend_config())(torch.as_tensor(waves).reshape(-1, np.shape(waves)[-1]))


@pytest.fixture(scope="module")
def ge2e() -> SpeakerFrontendEncoder:
    if not HAS_GE2E:
        pytest.skip("resemblyzer's GE2E weights: pip install 's2f[train]'")
    return SpeakerFrontendEncoder(embed_dim=16).eval()


@pytest.fixture(scope="module")
def resemblyzer_reference() -> types.ModuleType:
    """resemblyzer itself, as the reference. Its package imports webrtcvad (for voice-activity trimming,
    which these tests do not use), and webrtcvad 2.0.10 imports pkg_resources, gone from new setuptools:
    where that import fails, a placeholder stands in for it, for this module only."""
    pytest.importorskip("librosa")
    if not HAS_GE2E:
        pytest.skip("resemblyzer's GE2E weights: pip install 's2f[train]'")
    saved = {name: sys.modules.get(name) for name in ("webrtcvad",)}
    try:
        import webrtcvad  # noqa: F401
    except ImportError:
        sys.modules["webrtcvad"] = types.ModuleType("webrtcvad")
    try:
        import resemblyzer
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
    return resemblyzer


def test_mel_features_are_librosas_mel_power_spectrogram() -> None:
    librosa = pytest.importorskip("librosa")
    encoder = ENCODERS.create("s2f_ge2e_tiny")
    wave = vowels(2.0, 130.0)
    mel = encoder.mel(spectrogram(encoder, wave))[0].numpy()
    reference = librosa.feature.melspectrogram(y=wave, sr=RATE, n_fft=400, hop_length=160, n_mels=40, center=False)
    assert mel.shape == reference.T.shape == (1 + (len(wave) - 400) // 160, 40)
    np.testing.assert_allclose(mel, reference.T, rtol=1e-4, atol=1e-6 * reference.max())


def test_quiet_clips_are_raised_to_minus_30_dbfs_and_loud_ones_left_alone() -> None:
    encoder = ENCODERS.create("s2f_ge2e_tiny").eval()
    wave = vowels(3.0, 180.0, 0.85, dbfs=-45.0)
    rms = 10 ** (-45 / 20)
    spec = spectrogram(encoder, np.stack([wave, wave * 0.1, wave * 40]))
    mels = encoder.mel(spec)
    unscaled = spec.square().sum(dim=1) @ encoder.mel.filters
    np.testing.assert_allclose(mels[0], mels[1], rtol=1e-4, atol=1e-9)  # both raised to the same level
    target_gain = (10 ** (-30 / 20) / rms) ** 2  # in power, within the STFT's estimate of the clip's RMS
    assert float(mels[0].sum() / unscaled[0].sum()) == pytest.approx(target_gain, rel=0.03)
    assert torch.equal(mels[2], unscaled[2])  # above -30 dBFS: never lowered


@pytest.mark.parametrize("seconds", [0.5, 1.6, 2.4, 3.0, 4.45, 6.0, 9.7])
def test_partials_are_cut_as_resemblyzer_cuts_them(seconds: float, resemblyzer_reference: types.ModuleType) -> None:
    samples = round(seconds * RATE)
    _, reference = resemblyzer_reference.VoiceEncoder.compute_partial_slices(samples, rate=1.3, min_coverage=0.75)
    # resemblyzer counts the frames of a centred STFT (1 + samples // 160): the same count as s2f's frames
    # of the clip padded by half a window on each side, which is how the reference test below feeds it.
    assert partial_starts(1 + samples // 160) == [s.start for s in reference]


@needs_ge2e
def test_pretrained_dvector_is_resemblyzers(
    ge2e: SpeakerFrontendEncoder, resemblyzer_reference: types.ModuleType
) -> None:
    reference = resemblyzer_reference.VoiceEncoder(device="cpu", verbose=False)
    wave = vowels(5.3, 120.0, seed=3)
    expected = reference.embed_utterance(wave)  # -20 dBFS: resemblyzer's loudness step would leave it alone
    with torch.no_grad():
        # Padded by half a window on each side, s2f's frames are librosa's centred ones: the same numbers.
        centred = ge2e.dvector(spectrogram(ge2e, np.pad(wave, 200)))[0].numpy()
        as_s2f_hears_it = ge2e.dvector(spectrogram(ge2e, wave))[0].numpy()
        mels = torch.rand(3, 160, 40)
        assert torch.allclose(ge2e.frontend(mels), reference(mels), atol=1e-6)  # the same network
    np.testing.assert_allclose(centred, expected, atol=1e-4)  # the last partial's last frame: 40 samples apart
    assert float(as_s2f_hears_it @ expected) > 0.995  # 12.5 ms later frames, silent padding: nearly the same


@needs_ge2e
def test_pretrained_dvectors_tell_synthetic_speakers_apart(ge2e: SpeakerFrontendEncoder) -> None:
    speakers = [(110.0, 1.0), (125.0, 1.12), (210.0, 0.85), (240.0, 0.8)]  # (f0, vocal tract scale)
    waves = np.stack(
        [vowels(3.0, f0, tract, seed=10 * s + c) for s, (f0, tract) in enumerate(speakers) for c in (0, 1)]
    )
    with torch.no_grad():
        dvectors = ge2e.dvector(spectrogram(ge2e, waves))
    first_vs_second = dvectors[0::2] @ dvectors[1::2].T  # [speaker's first clip, speaker's second clip]
    assert torch.allclose(dvectors.norm(dim=1), torch.ones(len(waves)), atol=1e-5)
    # Each first clip finds its own speaker's second clip among all four (chance: 1 in 4) ...
    assert torch.equal(first_vs_second.argmax(dim=1), torch.arange(len(speakers))), first_vs_second
    # ... by a margin: the same speaker's clips are clearly closer than different speakers'.
    different = first_vs_second[~torch.eye(len(speakers), dtype=torch.bool)]
    assert first_vs_second.diagonal().mean() > different.mean() + 0.1, first_vs_second


# 1.62 s clips are one partial each (160 frames, no padding), and the pretrained LSTM runs every step
# (0.5 GFLOP a partial).
@pytest.mark.parametrize("name", ["s2f_ge2e_tiny", pytest.param("s2f_ge2e", marks=[needs_ge2e, pytest.mark.slow])])
def test_head_learns_a_voice_to_face_link_while_the_front_end_stays_frozen(name: str) -> None:
    torch.manual_seed(0)
    encoder = ENCODERS.create(name, embed_dim=8)
    # Faces that follow the voice: a fixed direction for each of 6 speakers, with f0 and vocal tract set by it.
    speakers = [(100.0 + 25 * s, 1.0 - 0.05 * s) for s in range(6)]
    faces = F.normalize(torch.randn(len(speakers), 8), dim=1)
    waves = np.stack(
        [vowels(1.62, f0, tract, seed=7 * s + c) for s, (f0, tract) in enumerate(speakers) for c in (0, 1)]
    )
    spec, target = spectrogram(encoder, waves), faces.repeat_interleave(2, dim=0)
    frozen = {key: value.clone() for key, value in encoder.frontend.state_dict().items()}
    optimizer = torch.optim.Adam([p for p in encoder.parameters() if p.requires_grad], lr=1e-2)
    encoder.train()
    losses = []
    for _ in range(40):
        loss = (1 - F.cosine_similarity(encoder(spec), target)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert not encoder.frontend.training and not any(p.requires_grad for p in encoder.frontend.parameters())
    assert all(torch.equal(value, frozen[key]) for key, value in encoder.frontend.state_dict().items())
    # A constant prediction (the faces' mean direction) leaves a cosine loss of about 1 - |mean|.
    constant = float(1 - F.cosine_similarity(F.normalize(faces.mean(0), dim=0)[None], faces).mean())
    assert losses[-1] < 0.3 * constant, (losses[0], losses[-1], constant)


def test_fine_tuning_trains_the_front_end_too() -> None:
    encoder = ENCODERS.create("s2f_ge2e_tiny", freeze_frontend=False).train()
    assert encoder.frontend.training
    encoder(spectrogram(encoder, np.stack([vowels(2.0, 150.0), vowels(2.0, 220.0)]))).square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in encoder.frontend.lstm.parameters())


@pytest.mark.parametrize("name", ["s2f_ge2e_tiny", pytest.param("s2f_ge2e", marks=needs_ge2e)])
def test_saved_model_round_trips_and_reloads_without_resemblyzer(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(1)
    model = Speech2Face(ENCODERS.create(name, embed_dim=16), clip_seconds=3.0).eval()
    torch.nn.init.normal_(model.encoder.head[-1].weight)  # not the constructor's draw: loading must restore it
    folder = model.save_pretrained(tmp_path / "model")
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "resemblyzer" else real_find_spec(n, *a)
    )
    loaded = Speech2Face.from_pretrained(folder)
    assert loaded.encoder.__class__ is SpeakerFrontendEncoder and loaded.frontend.n_fft == 400
    assert loaded.config()["encoder"]["init_args"]["load_pretrained"] is False
    wave = torch.from_numpy(vowels(3.0, 140.0))[None]
    with torch.no_grad():
        assert torch.allclose(loaded(wave), model(wave), atol=1e-5)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_predict_in_bf16_gives_the_fp32_embedding() -> None:
    # The fast path copies the encoder to bf16, buffers included: the mel front end must still run.
    torch.manual_seed(2)
    model = Speech2Face(ENCODERS.create("s2f_ge2e_tiny", embed_dim=16), clip_seconds=3.0).eval()
    clip = (torch.from_numpy(vowels(3.0, 140.0)), 16_000)
    fp32 = model.predict(clip, settings=InferenceSettings(inference_precision="fp32")).embedding
    bf16 = model.predict(clip, settings=InferenceSettings(inference_precision="bf16")).embedding
    assert F.cosine_similarity(bf16, fp32, dim=-1).item() > 0.99


def test_without_resemblyzer_the_pretrained_front_end_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(speaker_frontend.importlib.util, "find_spec", lambda name, *args: None)
    with pytest.raises(MissingExtraError, match=r"resemblyzer.*pip install 's2f\[train\]'"):
        ENCODERS.create("s2f_ge2e")
    ENCODERS.create("s2f_ge2e_tiny")  # randomly initialised: needs nothing


def test_unreadable_weights_are_one_line_naming_the_file(tmp_path: Path) -> None:
    encoder = ENCODERS.create("s2f_ge2e_tiny")
    broken = tmp_path / "pretrained.pt"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match=r"pretrained\.pt: not readable as GE2E weights"):
        encoder.frontend.load_ge2e(broken)
    torch.save({"model_state": {"lstm.weight_ih_l0": torch.zeros(3)}}, broken)
    with pytest.raises(WeightsError, match="does not match the GE2E speaker encoder"):
        encoder.frontend.load_ge2e(broken)
    with pytest.raises(ValueError, match="pretrained GE2E weights need"):
        SpeakerFrontendEncoder(hidden_size=32, load_pretrained=True)


def test_a_meta_skeleton_reads_no_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(speaker_frontend, "ge2e_weights_path", lambda: pytest.fail("read weights for a skeleton"))
    with torch.device("meta"):
        skeleton = SpeakerFrontendEncoder(embed_dim=16)
    assert skeleton.frontend.linear.weight.is_meta


def test_recipe_stacks_on_the_paper_recipe(capsys: pytest.CaptureFixture[str]) -> None:
    recipes = Path(__file__).resolve().parents[2] / "recipes"
    with pytest.raises(SystemExit) as exited:
        main(["fit", "--config", str(recipes / "paper.yaml"), "--config", str(recipes / "speaker_frontend.yaml"),
              "--print_config"])  # fmt: skip
    assert exited.value.code == 0
    printed = capsys.readouterr().out
    assert "class_path: s2f.encoders.SpeakerFrontendEncoder" in printed and "load_pretrained: true" in printed
    assert "PaperCNNEncoder" not in printed and "lambda_distill: 200.0" in printed  # the rest is the paper's


def test_the_comparison_benchmark_trains_a_head_on_fixed_dvectors(monkeypatch: pytest.MonkeyPatch) -> None:
    benchmarks = Path(__file__).resolve().parents[2] / "benchmarks"
    monkeypatch.syspath_prepend(str(benchmarks))  # benchmarks/ is a folder of scripts, not a package
    compare = importlib.import_module("compare_frontends")
    assert compare.demo_plan(benchmarks / "no-such-demo").encoder_setting("trainer.max_epochs") == 45  # default plan
    torch.manual_seed(0)
    encoder = ENCODERS.create("s2f_ge2e_tiny", embed_dim=8)
    features = F.normalize(torch.rand(64, 32), dim=1)  # d-vectors: unit length, non-negative
    center = torch.randn(8) * 3
    targets = center + features @ torch.randn(32, 8)  # faces that depend on the voice
    plan = compare.demo_plan(benchmarks / "no-such-demo")
    losses = compare.train_head(encoder, features, targets, plan, epochs=30, seed=0)
    assert not encoder.training and torch.allclose(encoder.head(features).mean(0), center, atol=2.0)
    assert losses[-1] < 0.3 * losses[0], losses
