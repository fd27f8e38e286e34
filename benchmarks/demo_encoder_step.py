"""Where the demo encoder's training step spends its time, part by part, and the whole step in five variants.

The demo's longest stage is fitting its encoder (``recipes/demo_encoder.yaml``: a tiny conformer that
reads the spectral envelope below 4 kHz and takes pitch from a YIN tracker, 16 clips of 3 s a step).
Much of its step is not the network: the STFT front end, the tracker (which inverts the STFT) and the
envelope (which undoes the front end's ``|x|^0.3`` and applies it again) carry no weights. This prints
each part's milliseconds per step and its share, then the whole step (forward, normalised L2 loss,
backward, Adam) in five variants, rounds interleaved in one run so load from other work falls on all alike:

- **as shipped**: the recipe's encoder and its share of clips through rooms and microphones, the
  subsampling reading the band's bins only (``crop_to_band``), and the power law as
  :func:`s2f.audio.spectrogram.signed_power` computes it where no gradient is wanted
  (``sgn(x) exp(p log|x|)``, whose ``exp`` and ``log`` are vectorised);
- **power law as pow**: the same encoder with ``sgn(x) |x|.pow(p)``, which PyTorch's CPU kernels compute
  element by element;
- **whole spectrum, band zeroed**: ``crop_to_band: false``, the subsampling reading all 257 bins with
  those above 4 kHz zeroed (the same input, a larger projection);
- **no rooms and microphones**: every clip dry, where the recipe sends a share of them through a random
  room and microphone first (``channel_augmentation``, :class:`s2f.train.augment.RoomAndMicrophone`);
- **envelope by two FFTs**: the envelope computed as it was before: the power law undone by powers, the log
  spectrum liftered by an inverse FFT and an FFT of every frame, every bin compressed again, where the shipped
  one takes logs, lifters by one matrix product and computes only the band's bins.

Each figure is the median of ``--repeats`` rounds; a variant's ratio is its time over the shipped step's
in the same run (above 1: the shipped step is faster). The parts' shares are of the shipped step.

With ``--loader SHARDS`` it also times epochs of the recipe's train loader over a demo's shards, decoding
every clip's FLAC each epoch and keeping the decoded clips (``keep_decoded_audio``, the recipe's setting).

Usage:
    python benchmarks/demo_encoder_step.py [--quick] [--repeats N] [--batch-size N] [--loader SHARDS [--epochs N]]
        [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from unittest import mock

import torch
import yaml

from _table import format_table, machine
from s2f.audio import spectrogram
from s2f.audio.envelope import spectral_envelope
from s2f.encoders import ConformerEncoder
from s2f.train.augment import RoomAndMicrophone
from s2f.train.losses import normalized_l2

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "demo_encoder.yaml"
WINDOW_SECONDS = 3.0  # the recipe's data.clip_seconds


def _pow_form(values: torch.Tensor, exponent: float) -> torch.Tensor:
    return values if exponent == 1.0 else values.sign() * values.abs().pow(exponent)


@contextlib.contextmanager
def power_law(form: str) -> Iterator[None]:
    """Runs the block with the power law in ``form``: 'exp-log' (as shipped) or 'pow' (the element-wise kernel)."""
    if form == "exp-log":
        yield
        return
    # The modules that use it imported it by name: patch each binding.
    targets = ("s2f.audio.spectrogram", "s2f.encoders.pitch")
    with contextlib.ExitStack() as stack:
        for target in targets:
            stack.enter_context(mock.patch(f"{target}.signed_power", _pow_form))
        yield


@torch.no_grad()
def envelope_by_ffts(
    spec: torch.Tensor, lifter: int = 24, power: float = 0.3, bins: int | None = None, **_: Any
) -> torch.Tensor:
    """:func:`s2f.audio.envelope.spectral_envelope` as it was computed before: the power law undone by powers,
    the log spectrum liftered by an inverse FFT and an FFT of every frame, every bin compressed again (the
    shipped form's ``matrix`` is accepted and not used)."""
    magnitude = spectrogram.signed_power(spec.float().abs(), 2.0 / power).sum(1).sqrt()
    log = torch.log(magnitude + 1e-5 * magnitude.amax(dim=(1, 2), keepdim=True) + 1e-12)
    size = 2 * (spec.shape[-1] - 1)
    quefrency = torch.arange(size)
    keep = ((quefrency < lifter) | (quefrency > size - lifter)).float()  # both ends: the cepstrum is symmetric
    log_envelope = torch.fft.rfft(torch.fft.irfft(log, n=size, dim=-1) * keep, n=size, dim=-1).real
    compressed = torch.exp(log_envelope * power)[..., :bins]
    return torch.stack([compressed, torch.zeros_like(compressed)], dim=1).to(spec.dtype)


@contextlib.contextmanager
def envelope_form(form: str) -> Iterator[None]:
    """Runs the block with the encoder's envelope as shipped ('matrix') or liftered by two FFTs ('ffts')."""
    if form == "matrix":
        yield
        return
    with mock.patch("s2f.encoders.conformer.spectral_envelope", envelope_by_ffts):
        yield


def recipe_channel_share() -> float:
    """The share of training clips the recipe sends through a room and a microphone."""
    return float(yaml.safe_load(RECIPE.read_text())["model"]["init_args"].get("channel_augmentation", 0.0))


def demo_encoder(**overrides: Any) -> ConformerEncoder:
    settings = yaml.safe_load(RECIPE.read_text())["model"]["init_args"]["encoder"]["init_args"]
    return ConformerEncoder(**{**settings, **overrides})


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def time_parts(encoder: ConformerEncoder, waves: torch.Tensor, repeats: int) -> list[dict[str, Any]]:
    """Milliseconds per step of the weightless parts, each on its own (no gradient: none flows through them),
    under each form of the power law."""
    frontend = spectrogram.SpectrogramFrontend(**encoder.frontend_config())
    with torch.no_grad():
        spec = frontend(waves)
        channel = RoomAndMicrophone(recipe_channel_share(), encoder.sample_rate)
        parts: dict[str, Callable[[], object]] = {
            "rooms and microphones (the recipe's share)": lambda: channel(waves),
            "STFT front end": lambda: frontend(waves),
            "pitch tracker (inverse STFT + YIN)": lambda: encoder.pitch(spec),
            "spectral envelope": lambda: spectral_envelope(
                spec, power=encoder.power, bins=encoder.band_bins, matrix=encoder.lifter
            ),
        }
        rows: list[dict[str, Any]] = []
        for name, fn in parts.items():
            with power_law("pow"):
                pow_ms = _median_ms(fn, repeats)
            rows.append({"part": name, "ms": _median_ms(fn, repeats), "pow_ms": pow_ms})
            rows[-1]["ratio"] = pow_ms / rows[-1]["ms"]
        return rows


def time_loader(shards: Path, epochs: int) -> dict[str, list[float]]:
    """Seconds per epoch of the demo recipe's train loader over ``shards``, decoding every epoch or keeping
    the decoded clips (``keep_decoded_audio``); the batches are the same either way."""
    from s2f.train.datamodule import S2FDataModule

    data = yaml.safe_load(RECIPE.read_text())["data"]["init_args"]
    times: dict[str, list[float]] = {}
    for keep in (False, True):
        settings = {**data, "data_dir": str(shards), "keep_decoded_audio": keep}
        module = S2FDataModule(**settings)
        module.setup()
        loader = module.train_dataloader()
        seconds = []
        for _ in range(epochs):
            start = time.perf_counter()
            for _batch in loader:
                pass
            seconds.append(time.perf_counter() - start)
        times["kept" if keep else "decoded every epoch"] = seconds
    return times


STEP_VARIANTS = (
    "as shipped",
    "power law as pow",
    "whole spectrum, band zeroed",
    "no rooms and microphones",
    "envelope by two FFTs",
)
"""The whole step as the recipe runs it, with the power law in PyTorch's element-wise form, with the
subsampling reading the whole spectrum with the band's complement zeroed (``crop_to_band: false``),
with every clip dry (``channel_augmentation: 0``), and with the envelope liftered by two FFTs of every
frame (:func:`envelope_by_ffts`) where the shipped one multiplies by a matrix and computes the band's bins only."""


def training_step(
    waves: torch.Tensor, crop_to_band: bool = True, channel_share: float | None = None
) -> Callable[[], float]:
    """One training step of a fresh encoder built from the recipe (seed 0) on ``waves``: rooms and microphones
    for ``channel_share`` of the clips (default: the recipe's), the front end, forward, normalised L2 loss,
    backward, Adam; the step returns its loss."""
    torch.manual_seed(0)
    encoder = demo_encoder(crop_to_band=crop_to_band).train()
    frontend = spectrogram.SpectrogramFrontend(**encoder.frontend_config())
    share = recipe_channel_share() if channel_share is None else channel_share
    channel = RoomAndMicrophone(share, encoder.sample_rate)
    target = torch.randn(waves.shape[0], encoder.embed_dim)
    optimizer = torch.optim.Adam(encoder.parameters(), lr=1e-3, betas=(0.5, 0.999))

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        loss = normalized_l2(encoder(frontend(channel(waves))), target)
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    return step


def time_steps(waves: torch.Tensor, repeats: int) -> dict[str, list[float]]:
    """Seconds per whole training step of each of :data:`STEP_VARIANTS`, rounds interleaved; each variant
    trains its own encoder, built from the recipe with the same seed."""
    variant = functools.partial(training_step, waves)
    share = recipe_channel_share()
    shipped = variant(crop_to_band=True, channel_share=share)
    runs: dict[str, tuple[Callable[[], float], str, str]] = {
        "as shipped": (shipped, "exp-log", "matrix"),
        "power law as pow": (shipped, "pow", "matrix"),
        "whole spectrum, band zeroed": (variant(crop_to_band=False, channel_share=share), "exp-log", "matrix"),
        "no rooms and microphones": (variant(crop_to_band=True, channel_share=0.0), "exp-log", "matrix"),
        "envelope by two FFTs": (shipped, "exp-log", "ffts"),
    }
    for step, power_form, envelope in runs.values():  # warm-up, untimed
        with power_law(power_form), envelope_form(envelope):
            step()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, (step, power_form, envelope) in runs.items():
            with power_law(power_form), envelope_form(envelope):
                start = time.perf_counter()
                step()
                times[name].append(time.perf_counter() - start)
    return times


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 clips, 1 round: a smoke test")
    parser.add_argument("--repeats", type=int, default=9, help="timed rounds (default 9)")
    parser.add_argument("--batch-size", type=int, default=16, help="clips per step (the recipe's: 16)")
    parser.add_argument("--loader", type=Path, metavar="SHARDS", help="also time the train loader over these shards")
    parser.add_argument("--epochs", type=int, default=3, help="loader epochs per setting (default 3)")
    parser.add_argument("--json", type=Path, help="also write the machine and every time here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, object]:
    args = parse_args(argv)
    if args.quick:
        args.repeats, args.batch_size = 1, 2
    torch.manual_seed(0)
    encoder = demo_encoder().train()
    waves = torch.randn(args.batch_size, round(WINDOW_SECONDS * encoder.sample_rate)) * 0.1
    steps = time_steps(waves, args.repeats)
    step_ms = {name: statistics.median(times) * 1e3 for name, times in steps.items()}
    shipped_ms = step_ms["as shipped"]
    parts = time_parts(encoder, waves, args.repeats)
    weightless_ms = sum(part["ms"] for part in parts)
    rest_ms = shipped_ms - weightless_ms
    parts.append({"part": "the rest: blocks forward + backward, loss, Adam", "ms": rest_ms})
    for part in parts:
        part["share"] = part["ms"] / shipped_ms
    host = machine()
    print(f"machine: {host}")
    print(f"demo encoder step, batch {args.batch_size} x {WINDOW_SECONDS:g} s, median of {args.repeats} rounds")
    columns = (("part", "part", "{}"), ("ms/step", "ms", "{:.1f}"), ("share", "share", "{:.0%}"),
               ("pow ms", "pow_ms", "{:.1f}"), ("pow / exp-log", "ratio", "{:.2f}"))  # fmt: skip
    print(format_table(parts, columns))
    ratios = {name: ms / shipped_ms for name, ms in step_ms.items()}
    print("whole step (same run, rounds interleaved; ratio: this variant's time / as shipped):")
    print(format_table(
        [{"variant": name, "ms": step_ms[name], "ratio": ratios[name]} for name in STEP_VARIANTS],
        (("variant", "variant", "{}"), ("ms/step", "ms", "{:.1f}"), ("/ as shipped", "ratio", "{:.2f}")),
    ))  # fmt: skip
    result = {"machine": host, "batch": args.batch_size, "parts": parts, "step_ms": step_ms, "ratios": ratios,
              "step_times_s": steps}  # fmt: skip
    if args.loader:
        loader = time_loader(args.loader, args.epochs)
        result["loader_epoch_s"] = loader
        for setting, seconds in loader.items():
            print(f"train loader, {setting}: " + ", ".join(f"{s:.2f}" for s in seconds) + " s per epoch")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
