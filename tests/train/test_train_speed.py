"""The training step's speed options (compiled encoder, fused Adam, fp32 head) and the benchmarks that measure them."""

from __future__ import annotations

import copy
import importlib.util
import pickle
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import torch

from s2f.train import Speech2FaceSystem

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _script(name: str) -> Iterator[ModuleType]:
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(BENCHMARKS))  # as when run as a script: it imports _table by name
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up by name
        spec.loader.exec_module(module)
        yield module
        del sys.modules[name]


@pytest.fixture(scope="module")
def peer() -> Iterator[ModuleType]:
    yield from _script("peer_ve_conv")


@pytest.fixture(scope="module")
def train_step() -> Iterator[ModuleType]:
    yield from _script("train_step")


# --------------------------------------------------------------------------------------------- system


def test_the_optimizer_is_fused_adam_with_the_papers_settings_on_the_cpu() -> None:
    system = Speech2FaceSystem("s2f_cnn_tiny", "vggface_tiny")
    optimizer = system.configure_optimizers()["optimizer"]
    assert isinstance(optimizer, torch.optim.Adam)
    group = optimizer.param_groups[0]
    assert group["fused"] is True
    assert (group["lr"], group["betas"], group["eps"]) == (1e-3, (0.5, 0.999), 1e-4)


def test_compile_keeps_the_module_tree_checkpoints_and_export_as_they_were() -> None:
    plain = Speech2FaceSystem("s2f_cnn_tiny", "vggface_tiny")
    compiled = Speech2FaceSystem("s2f_cnn_tiny", "vggface_tiny", compile=True)
    assert compiled.hparams["compile"] is True and plain.hparams["compile"] is False
    assert list(compiled.state_dict()) == list(plain.state_dict())
    assert {name for name, _ in compiled.named_modules()} == {name for name, _ in plain.named_modules()}
    compiled._encode  # noqa: B018 - the compiled function is built on first use, not at construction
    assert "_compiled_encoder" not in compiled.__dict__
    compiled.__dict__["_compiled_encoder"] = torch.compile(compiled.encoder)  # as after the first step
    assert list(compiled.state_dict()) == list(plain.state_dict())
    assert "_compiled_encoder" not in pickle.loads(pickle.dumps(compiled)).__dict__
    assert "_compiled_encoder" not in copy.deepcopy(compiled).__dict__
    assert compiled.export().encoder is compiled.encoder  # the plain module: exported models run eager


@pytest.mark.gpu
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_compile_trains_like_eager() -> None:
    """One bf16 step of the tiny system, compiled and eager from the same weights: same loss, close updates.

    On CUDA only: on the CPU, torch 2.14.1's inductor stops compiling this step's backward with
    ``InductorError: TypeError: Cannot convert expression to float`` (seen in a clean-clone CI run), so
    ``compile`` is a GPU option (``recipes/gpu.yaml``) and the CPU recipes leave it off.
    """
    torch.manual_seed(0)
    device = torch.device("cuda")
    eager = Speech2FaceSystem("s2f_cnn_tiny", "vggface_tiny", channels_last=True).to(device)
    compiled = Speech2FaceSystem("s2f_cnn_tiny", "vggface_tiny", channels_last=True, compile=True).to(device)
    compiled.load_state_dict(eager.state_dict())
    batch = {"audio": 0.1 * torch.randn(4, 16_000, device=device), "embedding": torch.rand(4, 64, device=device)}
    losses, weights = [], []
    for system in (eager, compiled):
        system.train()
        optimizer = system.configure_optimizers()["optimizer"]
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss, _ = system._losses(batch)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        weights.append(system.encoder.head[-1].weight.detach().clone())
    assert "_compiled_encoder" in compiled.__dict__
    assert losses[1] == pytest.approx(losses[0], rel=2e-2)
    assert torch.allclose(weights[0], weights[1], atol=2e-3)


@pytest.mark.host_sensitive
def test_the_cnn_head_runs_in_its_weights_dtype_under_autocast() -> None:
    system = Speech2FaceSystem("s2f_cnn_tiny", "vggface_tiny", channels_last=True).eval()
    waves = 0.1 * torch.randn(2, 16_000)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = system(waves)
        first_fc = system.encoder.head[3](torch.zeros(1, system.encoder.head[3].in_features))
    assert mixed.dtype == torch.float32  # the head (FC layers) ran in fp32, the convolutions in bf16
    assert first_fc.dtype == torch.bfloat16  # while autocast itself was on
    with torch.no_grad():
        reference = system(waves)
        assert system.encoder.to(torch.bfloat16)(system.frontend(waves).bfloat16()).dtype == torch.bfloat16
    assert torch.allclose(mixed, reference, atol=0.05 * reference.abs().max().item())


# --------------------------------------------------------------------------------------------- benchmarks


def test_ve_conv_is_the_peers_eleven_layers_and_148m_parameters(peer: ModuleType) -> None:
    model = peer.build_ve_conv()
    assert len(model) == 11
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(148.0e6, rel=0.01)
    assert model[9][1].in_features == 29_184  # 512 channels x 57 frequency bins left by valid convolutions
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == list(peer.VE_CONV_CHANNELS)
    assert all(c.kernel_size == (4, 4) and c.padding == (0, 0) for c in convs)
    assert [c.stride[0] for c in convs] == [1] * 7 + [2, 2]


def test_ve_conv_maps_a_6_s_spectrogram_to_an_embedding(peer: ModuleType) -> None:
    model = peer.build_ve_conv((4, 4, 8, 8, 8, 8, 8, 8, 8), hidden_dim=16, embed_dim=8).eval()
    assert model(torch.randn(2, *peer.PEER_INPUT)).shape == (2, 8)


def test_peer_ratios_name_the_targets(peer: ModuleType) -> None:
    def row(model: str, precision: str, mode: str, rate: float, mfu: float = 0.5):
        return peer.Row(model, precision, mode, 8, 1.0, 1.0, rate, 1.0, 1.0, 1.0, mfu, [])

    rows = [
        row("s2f_cnn", "32-true", "train", 0.3),
        row("ve_conv (peer)", "32-true", "train", 0.25),
        row("s2f_cnn", "bf16-mixed", "train", 1.0, mfu=0.46),
        row("ve_conv (peer)", "bf16-mixed", "train", 0.5),
    ]
    lines = "\n".join(peer.ratios(rows))
    assert "train 32-true: s2f / peer samples/s = 1.20x" in lines
    assert "train bf16-mixed: s2f / peer samples/s = 2.00x" in lines
    assert "s2f bf16 / peer fp32 eager = 4.00x (target 3x)" in lines
    assert "= 46.0% (target 45 %)" in lines


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message a machine without CUDA gives")
@pytest.mark.parametrize("script", ["peer", "train_step"])
def test_device_cuda_without_cuda_is_one_line(script: str, request: pytest.FixtureRequest) -> None:
    module = request.getfixturevalue(script)
    with pytest.raises(SystemExit) as stop:
        module.parse_args(["--device", "cuda"])
    message = str(stop.value.code)
    assert "needs CUDA" in message and "\n" not in message


def test_the_h100_need_and_the_batch_search(train_step: ModuleType) -> None:
    assert train_step.h100_samples_per_s() == pytest.approx(0.4 * 989e12 / 617e9)  # about 641 clips/s
    batch = {"audio": torch.arange(3.0)[:, None].repeat(1, 5), "clip_id": ["a", "b", "c"]}
    resized = train_step._resized(batch, 8)
    assert resized["audio"].shape == (8, 5) and resized["audio"][3:6].equal(batch["audio"])
    assert resized["clip_id"] == batch["clip_id"]

    def step(batch: dict) -> None:
        if len(batch["audio"]) > 64:
            raise torch.cuda.OutOfMemoryError("out of memory")

    assert train_step.largest_batch(step, batch, torch.device("cpu"), start=8) == 64
