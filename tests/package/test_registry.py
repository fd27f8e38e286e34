"""The registry, its plug-ins, and a walk over every registered model's tiny variant."""

from __future__ import annotations

import importlib.metadata
import warnings

import pytest
import torch
import torch.nn as nn

import s2f
from s2f import DECODERS, ENCODERS, TEACHERS, Registry
from s2f.audio import SpectrogramFrontend


class _Dummy(nn.Module):
    def __init__(self, width: int = 3) -> None:
        super().__init__()
        self.layer = nn.Linear(width, width)


def test_register_create_list_and_overrides() -> None:
    registry: Registry[nn.Module] = Registry("thing", "s2f.test-things")
    registry.add("dummy", _Dummy)
    registry.add("dummy_tiny", lambda **kw: _Dummy(**{"width": 1, **kw}))
    assert registry.list() == ["dummy", "dummy_tiny"]
    assert registry.list(tiny=True) == ["dummy_tiny"]
    assert registry.create("dummy", width=5).layer.in_features == 5
    assert registry.get("dummy").tiny_name == "dummy_tiny"
    with pytest.raises(KeyError, match="no thing named 'nope'"):
        registry.create("nope")


def test_a_package_that_registers_a_builder_may_be_named_by_a_saved_config_while_its_registry_lives() -> None:
    # The saved-config check asks every live registry which packages registered models, without the
    # registry module importing the families; a registry that is dropped stops vouching for its package.
    import gc

    from s2f._registry import all_registries
    from s2f.config.components import trusted_packages

    def builder() -> nn.Module:
        return _Dummy()

    builder.__module__ = "acme_voices.models"
    assert {ENCODERS, TEACHERS, DECODERS} <= set(all_registries())
    assert "acme_voices" not in trusted_packages()
    registry: Registry[nn.Module] = Registry("thing", "s2f.test-things")
    registry.add("acme", builder)
    assert "acme_voices" in trusted_packages()
    del registry
    gc.collect()
    assert "acme_voices" not in trusted_packages()


def test_duplicate_name_warns_and_replaces() -> None:
    registry: Registry[nn.Module] = Registry("thing", "s2f.test-things")
    registry.add("dummy", _Dummy)
    with pytest.warns(UserWarning, match="'dummy'.*replaced"):
        registry.add("dummy", lambda: _Dummy(7))
    assert registry.create("dummy").layer.in_features == 7


class _EntryPoint:
    def __init__(self, name: str, target: object) -> None:
        self.name, self.value, self._target = name, f"fake_pkg:{name}", target

    def load(self) -> object:
        if isinstance(self._target, Exception):
            raise self._target
        return self._target


def test_plugins_load_lazily_and_a_broken_one_only_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def fake_entry_points(group: str) -> list[_EntryPoint]:
        calls.append(group)
        return [_EntryPoint("good_encoder", _Dummy), _EntryPoint("broken", ImportError("no module named torch_nope"))]

    monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points)
    registry: Registry[nn.Module] = Registry("encoder", "s2f.encoders")
    registry.add("builtin", _Dummy)
    assert calls == []  # nothing loads until a lookup needs it
    assert registry.create("builtin").layer.in_features == 3
    assert calls == []
    with pytest.warns(UserWarning, match=r"skipped encoder plug-in 'broken'.*torch_nope") as caught:
        names = registry.list()
    assert len(caught) == 1
    assert names == ["builtin", "good_encoder"]
    assert isinstance(registry.create("good_encoder"), _Dummy)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        registry.list()  # loaded once: no second warning
    assert calls == ["s2f.encoders"]


def test_every_full_model_ships_a_tiny_variant() -> None:
    for registry in (ENCODERS, TEACHERS, DECODERS):
        for name in registry.list(tiny=False):
            assert registry.get(name).tiny_name in registry, f"{registry.kind} {name} has no tiny variant"
    assert s2f.list_models("*_tiny")


@pytest.mark.parametrize("name", ENCODERS.list(tiny=True))
@pytest.mark.parametrize("seconds", [3.0, 6.0])
def test_every_tiny_encoder_runs_forward_and_backward(name: str, seconds: float) -> None:
    torch.manual_seed(0)
    encoder = ENCODERS.create(name)
    frontend = SpectrogramFrontend(**encoder.frontend_config())
    spec = frontend(torch.randn(3, int(seconds * encoder.sample_rate)))
    embedding = encoder(spec)
    assert embedding.shape == (3, encoder.embed_dim)
    assert torch.isfinite(embedding).all()
    embedding.square().mean().backward()
    grads = [p.grad for p in encoder.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads if g is not None)


@pytest.mark.parametrize("name", TEACHERS.list(tiny=True))
def test_every_tiny_teacher_is_frozen_and_embeds(name: str) -> None:
    teacher = TEACHERS.create(name)
    teacher.train()
    assert not any(module.training for module in teacher.modules())  # dropout off, batch-norm statistics fixed
    state_before = {key: value.clone() for key, value in teacher.state_dict().items()}
    faces = torch.randint(0, 256, (2, 3, 160, 160), dtype=torch.uint8)
    embedding = teacher.embed_images(faces)
    assert embedding.shape == (2, teacher.embed_dim)
    for key, value in teacher.state_dict().items():
        assert torch.equal(value, state_before[key]), key
    parameters = list(teacher.parameters())
    if parameters:
        assert not any(p.requires_grad for p in parameters)
    else:
        # Nothing to freeze (dlib runs outside autograd): frozen means that no graph leaves the teacher
        # for a loss to follow back into it, and that a checkpoint has nothing of it to save.
        assert teacher(teacher.preprocess(faces).requires_grad_(True)).grad_fn is None
        assert teacher.state_dict() == {}
    if teacher.has_classifier:
        # Frozen weights, but gradients still reach the embedding through the classifier.
        probe = embedding.clone().requires_grad_(True)
        teacher.classify(probe).sum().backward()
        assert probe.grad is not None and probe.grad.abs().sum() > 0


@pytest.mark.parametrize("name", DECODERS.list(tiny=True))
def test_every_tiny_decoder_runs_forward_and_backward(name: str) -> None:
    decoder = DECODERS.create(name)
    embedding = torch.randn(2, decoder.embed_dim, requires_grad=True)
    output = decoder(embedding)
    assert output.image.shape == (2, 3, decoder.image_size, decoder.image_size)
    output.image.mean().backward()
    assert embedding.grad is not None


def test_model_info_counts_what_building_the_model_gives() -> None:
    infos = {info.name: info for info in s2f.model_info()}
    assert sorted(infos) == s2f.list_models()
    registries = {"encoder": ENCODERS, "teacher": TEACHERS, "decoder": DECODERS}
    for info in infos.values():
        if info.tiny:  # cheap to build for real; the meta-device count must agree with it
            model = registries[info.kind].create(info.name)
            assert info.params == sum(p.numel() for p in model.parameters()), info.name
            assert info.embed_dim == model.embed_dim and info.error == "", info.name
            assert info.package == "s2f" and info.module.startswith("s2f."), info.name
    assert infos["s2f_cnn"].params == 162_743_040 and infos["s2f_cnn"].embed_dim == 4096
    assert infos["vggface"].params is None and "weights file" in infos["vggface"].error  # needs its file to build
    assert [i.name for i in s2f.model_info("s2f_conformer*", tiny=False)] == ["s2f_conformer"]
