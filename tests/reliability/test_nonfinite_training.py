"""Training that meets a NaN or infinite loss: the step is skipped with a warning and counted, or the run stops."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from torch.utils.data import DataLoader

from helpers.fit import quiet_trainer
from s2f.train import Speech2FaceSystem
from s2f.train.nonfinite import NonFiniteLoss


def _batches(bad: int | None, count: int = 4) -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    batches = []
    for index in range(count):
        batch = {"audio": 0.1 * torch.randn(2, 16_000, generator=generator), "embedding": torch.randn(2, 64)}
        if index == bad:
            batch["embedding"][0, 5] = float("nan")  # an fp16 embedding that overflowed on the way in
        batches.append(batch)
    return batches


def _fit(system: Speech2FaceSystem, batches: list[dict[str, torch.Tensor]]) -> None:
    quiet_trainer(max_epochs=1).fit(system, train_dataloaders=DataLoader(batches, batch_size=None))


def _system(**kwargs: object) -> Speech2FaceSystem:
    torch.manual_seed(0)
    return Speech2FaceSystem("s2f_cnn_tiny", "vggface_tiny", **kwargs)


def test_a_nan_loss_skips_its_step_with_a_warning_and_leaves_the_weights_finite() -> None:
    system = _system()
    before = copy.deepcopy(system.encoder.state_dict())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _fit(system, _batches(bad=1))
    assert system.nonfinite_steps == 1
    assert any("loss is NaN or infinite; the step is skipped (1 of at most 10)" in str(w.message) for w in caught)
    after = system.encoder.state_dict()
    assert all(torch.isfinite(value).all() for value in after.values())
    assert any(not torch.equal(before[name], after[name]) for name in before)  # the other steps did train


@pytest.mark.slow
def test_the_skipped_step_is_the_only_difference_from_a_run_without_that_batch() -> None:
    with_nan = _system()
    _fit(with_nan, _batches(bad=1))
    without = _system()
    _fit(without, [batch for index, batch in enumerate(_batches(bad=1)) if index != 1])
    # Adam's state and the weights advance only on good steps: three good steps in both runs. (BatchNorm's
    # running statistics did see the skipped batch's audio in its forward pass, so buffers are not compared.)
    trained = dict(without.encoder.named_parameters())
    for name, parameter in with_nan.encoder.named_parameters():
        assert torch.allclose(parameter, trained[name], atol=1e-6), name


def test_a_run_set_to_stop_stops_with_one_line() -> None:
    system = _system(max_nonfinite_steps=0)
    with pytest.raises(NonFiniteLoss) as error:
        _fit(system, _batches(bad=2))
    message = str(error.value)
    assert "\n" not in message and "max_nonfinite_steps=0" in message and message.startswith("step 2:")
