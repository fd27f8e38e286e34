"""Where the demo encoder's training step spends its time, part by part, with the power law done two ways.

The demo's longest stage is fitting its encoder (``recipes/demo_encoder.yaml``: a tiny conformer that
reads the spectral envelope and takes pitch from a YIN tracker, 16 clips of 3 s a step). Most of its
step is not the network: the STFT front end, the tracker (which inverts the STFT) and the envelope
(which undoes the front end's ``|x|^0.3`` and applies it again) carry no weights. This prints each part's
milliseconds per step and its share, then the whole step (forward, normalised L2 loss, backward, Adam)
done two ways, interleaved in one run so load from other work falls on both alike:

- **pow**: the power law as ``sgn(x) |x|.pow(p)``, which PyTorch's CPU kernels compute element by element;
- **exp-log** (today's :func:`s2f.audio.spectrogram.signed_power` where no gradient is wanted):
  ``sgn(x) exp(p log|x|)``, whose ``exp`` and ``log`` are vectorised.

Each figure is the median of ``--repeats`` rounds; the ratio is pow / exp-log of the same run (above 1:
today's form is faster). The parts' shares come from the exp-log rounds.

With ``--loader SHARDS`` it also times epochs of the recipe's train loader over a demo's shards, decoding
every clip's FLAC each epoch and keeping the decoded clips (``keep_decoded_audio``, the recipe's setting).

Usage:
    python benchmarks/demo_encoder_step.py [--quick] [--repeats N] [--batch-size N] [--loader SHARDS [--epochs N]]
        [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
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
    targets = ("s2f.audio.spectrogram", "s2f.audio.envelope", "s2f.encoders.pitch")
    with contextlib.ExitStack() as stack:
        for target in targets:
            stack.enter_context(mock.patch(f"{target}.signed_power", _pow_form))
        yield


def demo_encoder() -> ConformerEncoder:
    settings = yaml.safe_load(RECIPE.read_text())["model"]["init_args"]["encoder"]["init_args"]
    return ConformerEncoder(**settings)


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
        parts: dict[str, Callable[[], object]] = {
            "STFT front end": lambda: frontend(waves),
            "pitch tracker (inverse STFT + YIN)": lambda: encoder.pitch(spec),
            "spectral envelope": lambda: spectral_envelope(spec, power=encoder.power),
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


def time_steps(encoder: ConformerEncoder, waves: torch.Tensor, repeats: int) -> dict[str, list[float]]:
    """Seconds per whole training step under each form of the power law, rounds interleaved."""
    frontend = spectrogram.SpectrogramFrontend(**encoder.frontend_config())
    target = torch.randn(waves.shape[0], encoder.embed_dim)
    optimizer = torch.optim.Adam(encoder.parameters(), lr=1e-3, betas=(0.5, 0.999))

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        normalized_l2(encoder(frontend(waves)), target).backward()
        optimizer.step()

    forms = ("pow", "exp-log")
    for form in forms:  # warm-up, untimed
        with power_law(form):
            step()
    times: dict[str, list[float]] = {form: [] for form in forms}
    for _ in range(repeats):
        for form in forms:
            with power_law(form):
                start = time.perf_counter()
                step()
                times[form].append(time.perf_counter() - start)
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
    steps = time_steps(encoder, waves, args.repeats)
    step_ms = {form: statistics.median(times) * 1e3 for form, times in steps.items()}
    parts = time_parts(encoder, waves, args.repeats)
    weightless_ms = sum(part["ms"] for part in parts)
    rest_ms = step_ms["exp-log"] - weightless_ms
    parts.append({"part": "the rest: blocks forward + backward, loss, Adam", "ms": rest_ms})
    for part in parts:
        part["share"] = part["ms"] / step_ms["exp-log"]
    host = machine()
    print(f"machine: {host}")
    print(f"demo encoder step, batch {args.batch_size} x {WINDOW_SECONDS:g} s, median of {args.repeats} rounds")
    columns = (("part", "part", "{}"), ("ms/step", "ms", "{:.1f}"), ("share", "share", "{:.0%}"),
               ("pow ms", "pow_ms", "{:.1f}"), ("pow / exp-log", "ratio", "{:.2f}"))  # fmt: skip
    print(format_table(parts, columns))
    ratio = step_ms["pow"] / step_ms["exp-log"]
    print(
        f"whole step: pow {step_ms['pow']:.1f} ms, exp-log {step_ms['exp-log']:.1f} ms; "
        f"pow / exp-log = {ratio:.2f} (same run, interleaved)"
    )
    result = {"machine": host, "batch": args.batch_size, "parts": parts, "step_ms": step_ms, "ratio": ratio,
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
