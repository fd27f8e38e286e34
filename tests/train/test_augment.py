"""Rooms and microphones for training batches: what each part of the channel does to a clip."""

from __future__ import annotations

import math

import pytest
import torch

from s2f.train import Speech2FaceSystem
from s2f.train.augment import RoomAndMicrophone

RATE = 16_000


def tones(count: int, seconds: float, *frequencies: float) -> torch.Tensor:
    time = torch.arange(int(seconds * RATE)) / RATE
    wave = sum(torch.sin(2 * math.pi * hertz * time) for hertz in frequencies)
    return (0.3 * wave).repeat(count, 1)


def bin_power(audio: torch.Tensor, hertz: float) -> torch.Tensor:
    """Power at one frequency of clips whose length is a whole number of seconds (1 Hz bins)."""
    seconds = audio.shape[-1] // RATE
    return torch.fft.rfft(audio).abs().square()[:, round(hertz * seconds)]


def test_share_zero_is_the_identity_and_share_picks_that_share_of_clips():
    audio = tones(400, 1.0, 440.0)
    assert RoomAndMicrophone(0.0)(audio) is audio
    torch.manual_seed(0)
    out = RoomAndMicrophone(0.5)(audio)
    changed = int((out != audio).any(-1).sum())
    assert 150 <= changed <= 250  # binomial(400, 0.5): 4 standard deviations either side
    untouched = ~(out != audio).any(-1)
    assert torch.equal(out[untouched], audio[untouched])


def test_seeded_draws_repeat_and_differ_between_clips():
    audio = tones(8, 1.0, 300.0)
    torch.manual_seed(3)
    first = RoomAndMicrophone(1.0)(audio)
    torch.manual_seed(3)
    again = RoomAndMicrophone(1.0)(audio)
    assert torch.equal(first, again)
    assert not torch.allclose(first[0], first[1], atol=1e-3)  # each clip its own room and microphone
    assert torch.allclose(first.abs().amax(-1), audio.abs().amax(-1), rtol=1e-5)  # each keeps its peak


def test_the_band_cuts_below_the_microphone_and_the_noise_stays_within_its_snr():
    # A 30 Hz hum lies below every band (60-300 Hz high-pass); 1 kHz lies inside every one.
    audio = tones(64, 2.0, 30.0, 1000.0)
    torch.manual_seed(1)
    out = RoomAndMicrophone(1.0)(audio)
    kept_low = bin_power(out, 30.0) / bin_power(out, 1000.0)
    assert float(kept_low.median()) < 10 ** (-8 / 10)  # the second-order slope: at least 12 dB, less a room's ripple

    clean = tones(64, 2.0, 1000.0)
    torch.manual_seed(2)
    out = RoomAndMicrophone(1.0)(clean)
    # The second half, once any room's reverberation has built up, through a Hann window: 1 Hz bins.
    steady = out[:, RATE:] * torch.hann_window(RATE, periodic=False)
    spectrum = torch.fft.rfft(steady).abs().square()
    tone = spectrum[:, 996:1005].sum(-1)
    snr_db = 10 * torch.log10(tone / (spectrum.sum(-1) - tone))
    assert float(snr_db.min()) > 7.0 and float(snr_db.max()) < 45.0  # drawn from 10-40 dB


def test_rooms_have_a_direct_path_and_a_tail_at_their_drawn_level():
    module = RoomAndMicrophone(1.0)
    torch.manual_seed(4)
    size = 2 * RATE
    spectra = module._room(500, size, torch.fft.rfftfreq(size, 1.0 / RATE)[None])
    impulses = torch.fft.irfft(spectra, n=size)
    assert torch.allclose(impulses[:, 0], torch.ones(500), atol=1e-4)  # the direct sound, first and whole
    tail_energy = impulses[:, 1:].square().sum(-1)
    with_room = tail_energy > 1e-6
    assert 0.6 < float(with_room.float().mean()) < 0.8  # a room in 70 % of clips
    ratio_db = -10 * torch.log10(tail_energy[with_room])
    assert float(ratio_db.min()) > -3.5 and float(ratio_db.max()) < 12.5  # direct-to-reverberant, -3 to 12 dB
    assert float(impulses[:, 1 : int(0.002 * RATE)].abs().max()) < 1e-3  # nothing before the shortest delay
    assert float(impulses[:, int(0.55 * RATE) :].abs().max()) < 1e-3  # no tail beyond the longest room


def test_the_tilt_is_a_slope_above_1_khz_drawn_from_its_range():
    module = RoomAndMicrophone(1.0, tilt_db_per_octave=(-5.0, 5.0))
    torch.manual_seed(5)
    hertz = torch.tensor([[100.0, 2000.0, 4000.0, 8000.0]])
    gain_db = 20 * torch.log10(module._tilt(2000, hertz))
    assert float(gain_db[:, 0].abs().max()) < 0.2  # flat below the knee
    per_octave = gain_db[:, 3] - gain_db[:, 2]  # 4 to 8 kHz: the full slope, to within 2 %
    assert float(per_octave.min()) > -5.0 and float(per_octave.max()) < 5.0
    assert float(per_octave.min()) < -4.5 and float(per_octave.max()) > 4.5  # the whole range is drawn
    assert torch.allclose(gain_db[:, 2] - gain_db[:, 1], per_octave, rtol=0.1)  # one slope, octave after octave
    with pytest.raises(ValueError, match="tilt_db_per_octave"):
        RoomAndMicrophone(0.5, tilt_db_per_octave=(5.0, -5.0))


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`:UserWarning")
def test_the_system_augments_training_batches_only():
    batch = {"audio": tones(4, 1.0, 200.0, 900.0), "embedding": torch.randn(4, 64)}
    plain = Speech2FaceSystem("s2f_cnn_tiny", "vggface_tiny")
    recorded = Speech2FaceSystem("s2f_cnn_tiny", "vggface_tiny", channel_augmentation=1.0)
    recorded.load_state_dict(plain.state_dict())
    for system in (plain, recorded):
        system.eval()
    torch.manual_seed(0)
    val_plain = plain._losses(batch)[0]
    assert torch.equal(val_plain, recorded._losses(batch)[0])  # val and test hear the clips as they are
    seen = []
    recorded.forward = lambda audio: seen.append(audio) or plain(audio)  # type: ignore[method-assign]
    recorded.training_step(batch, 0)
    assert not torch.allclose(seen[0], batch["audio"], atol=1e-3)


def test_a_share_outside_zero_to_one_is_refused():
    with pytest.raises(ValueError, match="share"):
        RoomAndMicrophone(1.5)
