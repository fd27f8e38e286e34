"""`s2f fit` killed with SIGKILL at five seeded random instants, resumed each time with ``--ckpt_path last``,
ends with the same weights as an uninterrupted run: bit for bit.

Exact equality holds because everything a step depends on is restored or repeated: the checkpoint
holds the weights, the optimizer's moments and the data loader's position (litdata's resumable
loader), ``seed_everything`` re-seeds the same state at every start, and the debug recipe's model
draws no random numbers while training (no dropout, no random crop), and CPU kernels are
deterministic. A recipe with dropout or ``random_crop`` would not be bit-exact after a resume
(Lightning does not checkpoint the global RNG streams); that is not what this test claims.

The instants are drawn from a fixed seed: each is a training step (or the start-up, before any
step) plus a random fraction of one step's duration, so kills land at start-up, in the middle of a
step, between steps and during checkpoint writes. The steps between the last checkpoint and a kill
are lost and redone, as in a real crash. Each run is forked from a process that has already
imported s2f (``helpers.forkserver``), so that seven starts cost seconds, not minutes.
"""

from __future__ import annotations

import itertools
import random
import statistics
import time
from pathlib import Path

import pytest
import torch

from helpers.fit import fit_args, read_steps, weights
from helpers.forkserver import ForkServer

SEED = 5
KILLS = 5
EPOCHS, EVERY = 3, 3  # 8 steps an epoch (32 clips, batches of 4): 24 steps, a checkpoint every 3
STEPS = EPOCHS * 8


@pytest.fixture(scope="module")
def shards(chunked_toy_shards: Path) -> Path:
    return chunked_toy_shards


def _args(shards: Path, run: Path) -> list[str]:
    steps = {"class_path": "helpers.fit.StepLog", "init_args": {"path": str(run / "steps.log")}}
    return ["fit", *fit_args(shards, run, epochs=EPOCHS, every=EVERY, callbacks=[steps]), "--ckpt_path", "last"]


def _instants(rng: random.Random) -> list[tuple[int, float]]:
    """Five (step, fraction of a step) pairs, in order; step -1 is the start-up (a fraction of its duration)."""
    steps = sorted(rng.sample(range(-1, STEPS - 4), KILLS))
    return [(step, rng.random()) for step in steps]


def _wait_for_step(server: ForkServer, log: Path, step: int, deadline: float) -> None:
    while not any(s >= step for s, _ in read_steps(log)):
        assert server.alive(), f"the run ended before step {step}: {(log.parent / 'fit.log').read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"the run never reached step {step}"
        time.sleep(0.005)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_fit_killed_at_five_random_instants_ends_with_the_weights_of_an_uninterrupted_run(
    shards: Path, tmp_path: Path
) -> None:
    server = ForkServer()
    try:
        reference = tmp_path / "reference"
        began = time.monotonic()
        server.start(_args(shards, reference), tmp_path / "reference.log")
        assert server.wait() == 0, (tmp_path / "reference.log").read_text()[-3000:]
        times = [when for _, when in read_steps(reference / "steps.log")]
        startup, step_time = times[0] - began, statistics.median(b - a for a, b in itertools.pairwise(times))

        run = tmp_path / "run"
        kills = []
        for step, fraction in _instants(random.Random(SEED)):
            launched = time.monotonic()
            server.start(_args(shards, run), run / "fit.log")
            if step < 0:
                time.sleep(fraction * startup)
            else:
                _wait_for_step(server, run / "steps.log", step, launched + 300)
                time.sleep(fraction * step_time)
            last = run / "checkpoints" / "last.ckpt"
            resumed_from = weights(last)[0] if last.exists() else 0
            assert server.kill() == -9, f"the run finished before the kill at step {step} + {fraction:.2f}"
            kills.append(f"step {step} + {fraction:.2f} of a step (resumed from {resumed_from})")
        server.start(_args(shards, run), run / "fit.log")
        assert server.wait() == 0, (run / "fit.log").read_text()[-3000:]
    finally:
        server.close()
    print(f"kills: {kills}; start-up {startup:.1f} s, {step_time * 1000:.0f} ms a step")

    step, final = weights(run / "checkpoints" / "last.ckpt")
    expected_step, expected = weights(reference / "checkpoints" / "last.ckpt")
    assert step == expected_step == STEPS
    assert final.keys() == expected.keys()
    different = [name for name in final if not torch.equal(final[name], expected[name])]
    assert not different, (kills, different)
    # The steps the runs went through: every step reached, the lost ones redone.
    assert {s for s, _ in read_steps(run / "steps.log")} == set(range(STEPS))


def test_a_restored_loader_position_applies_to_one_epoch_only(shards: Path) -> None:
    """The resume bug the test above found, in a second: the epoch after a resumed one is whole.

    Lightning ends an epoch after ``len(loader)`` batches and may leave the loader's iterator
    suspended there; litdata's loader then kept its restore flag and cut the next epoch short.
    """
    from s2f.data import S2FDataModule

    def loader():  # type: ignore[no-untyped-def]
        return S2FDataModule(data_dir=str(shards), batch_size=4, num_workers=0, clip_seconds=1.0).train_dataloader()

    first = loader()
    batches = iter(first)
    for _ in range(3):
        next(batches)
    resumed = loader()
    resumed.load_state_dict(first.state_dict())
    rest = list(itertools.islice(iter(resumed), len(resumed) - 3))  # the iterator is left suspended, not exhausted
    following = [clip for batch in resumed for clip in batch["clip_id"]]
    assert len(rest) == 5 and len(following) == 32 == len(set(following))
