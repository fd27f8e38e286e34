"""Speech2FaceSystem's learning-rate decay by epochs: the demo's recipes decay once per pass over a small world."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch

from s2f.data import S2FDataModule
from s2f.train import Speech2FaceSystem

from ..helpers.fit import quiet_trainer

EPOCHS, BATCH = 2, 4


def _trained(shards: Path, root: Path, **schedule: int) -> tuple[Speech2FaceSystem, float]:
    L.seed_everything(0, verbose=False)
    system = Speech2FaceSystem("s2f_conformer_tiny", "vggface_tiny", lr=1e-3, lr_decay=0.5, **schedule)  # type: ignore[arg-type]
    trainer = quiet_trainer(root, max_epochs=EPOCHS)
    trainer.fit(system, datamodule=S2FDataModule(str(shards), batch_size=BATCH, clip_seconds=1.0, seed=0))
    return system, trainer.optimizers[0].param_groups[0]["lr"]


def test_a_decay_every_epoch_is_a_decay_every_epochs_worth_of_steps(shard_factory, tmp_path: Path) -> None:
    shards = shard_factory.toy()
    steps_per_epoch = S2FDataModule(str(shards), batch_size=BATCH).manifest.splits["train"].clips // BATCH
    by_epoch, lr_by_epoch = _trained(shards, tmp_path / "epochs", lr_decay_epochs=1)
    by_steps, lr_by_steps = _trained(shards, tmp_path / "steps", lr_decay_steps=steps_per_epoch)
    assert lr_by_epoch == lr_by_steps == 1e-3 * 0.5**EPOCHS
    # The same updates in the same order: the same weights, to the bit.
    other = by_steps.encoder.state_dict()
    for name, one in by_epoch.encoder.state_dict().items():
        assert torch.equal(one, other[name]), name
    # A different schedule moves them elsewhere: the comparison can tell.
    never, _ = _trained(shards, tmp_path / "never", lr_decay_steps=10_000)
    assert not all(
        torch.equal(one, never.encoder.state_dict()[name]) for name, one in by_epoch.encoder.state_dict().items()
    )
