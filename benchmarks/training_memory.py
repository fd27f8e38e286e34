"""The memory one replica's training state takes, by arithmetic from the parameter counts: what FSDP could shard.

For the trained encoder: its parameters, their gradients and Adam's two moments, each one number
per parameter, so ``params x bytes x 4``; for the frozen teacher: its parameters alone
(``params x bytes``: no gradients, no optimiser state). Bytes are 4 (fp32 master weights and
optimiser state, as bf16-mixed keeps them). GB are 1e9 bytes. Activations are not in it: they grow
with the batch, and ``train_step.py`` measures them (its ``peak MB/sample``).

The models are built on PyTorch's meta device (shapes without storage), so the count costs no memory
and no weights file.

    python benchmarks/training_memory.py [--encoder s2f_cnn] [--teacher vggface]
"""

from __future__ import annotations

import argparse

import torch

from _table import format_table
from s2f import ENCODERS, TEACHERS

__all__ = ["main", "state_gb"]

FP32_BYTES = 4
ADAM_STATE_PER_PARAM = 2  # first and second moments


def state_gb(params: int, trained: bool, bytes_per_number: int = FP32_BYTES) -> float:
    """GB of weights (and, when ``trained``, gradients and Adam's moments) for ``params`` parameters.

    >>> round(state_gb(162_743_040, trained=True), 2), round(state_gb(145_002_878, trained=False), 2)
    (2.6, 0.58)
    """
    copies = 1 + (1 + ADAM_STATE_PER_PARAM if trained else 0)
    return params * bytes_per_number * copies / 1e9


def main(argv: list[str] | None = None) -> list[dict[str, object]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoder", default="s2f_cnn", help="a registered encoder (default: the paper's)")
    parser.add_argument("--teacher", default="vggface", help="a registered teacher (default: the paper's)")
    args = parser.parse_args(argv)
    with torch.device("meta"):
        encoder = ENCODERS.create(args.encoder)
        teacher = TEACHERS.create(args.teacher, **({"random_init_seed": 0} if args.teacher == "vggface" else {}))
    rows: list[dict[str, object]] = []
    total = 0.0
    for role, model, trained in (("encoder", encoder, True), ("teacher (frozen)", teacher, False)):
        params = sum(p.numel() for p in model.parameters())
        total += state_gb(params, trained=trained)
        rows.append(
            {
                "role": role,
                "model": args.encoder if trained else args.teacher,
                "params_m": params / 1e6,
                "weights_gb": state_gb(params, trained=False),
                "state_gb": state_gb(params, trained=trained),
            }
        )
    rows.append({"role": "total", "model": None, "params_m": None, "weights_gb": None, "state_gb": total})
    columns = [
        ("role", "role", "{}"),
        ("model", "model", "{}"),
        ("params M", "params_m", "{:.2f}"),
        ("fp32 weights GB", "weights_gb", "{:.2f}"),
        ("+ grads + Adam GB", "state_gb", "{:.2f}"),
    ]
    print(format_table(rows, columns))
    return rows


if __name__ == "__main__":
    main()
