"""Shared fixtures. Tests never reach the network unless marked ``network``: hubs offline, W&B offline, and a
test without the mark that opens a connection beyond this machine fails with the test's name."""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("WANDB_DIR", tempfile.mkdtemp(prefix="s2f-wandb-"))
# OpenMP threads that spin while they wait make each small parallel region (an LSTM step, a tiny conv) wait
# for a thread the OS has parked whenever another process holds one of a 2-core machine's cores: GE2E's
# forward pass took 1-17 s instead of 0.1 s under a load of 2-3. Waiting asleep costs little when the
# machine is idle. Read once, when torch loads OpenMP: so before the first import of torch (and inherited
# by every subprocess a test starts).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import lightning.pytorch  # noqa: F401  (see below)
import pytest
import torch

from helpers.shards import ShardFactory

# Lightning gives its loggers a StreamHandler bound to sys.stderr when it is first imported. Imported
# here, that is pytest's session-wide stream; first imported inside a test that uses capsys, it would be
# that test's stream, closed after it, and every later Lightning log line would fail to write.

torch.set_num_threads(min(2, os.cpu_count() or 1))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


class NetworkInTestError(RuntimeError):
    """A test without the ``network`` mark tried to reach another machine (not an OSError, so no retry hides it)."""


_LOCAL_NAMES = {"", "localhost", "ip6-localhost", socket.gethostname()}


def _is_local(host: object) -> bool:
    if not isinstance(host, str) or host in _LOCAL_NAMES:
        return True
    try:
        address = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False  # a name other than this machine's: resolving it would already ask a DNS server
    return address.is_loopback or address.is_unspecified


@contextmanager
def _local_only(where: str) -> Iterator[None]:
    """Name lookups and connections beyond this machine raise :class:`NetworkInTestError` naming ``where``."""
    real_getaddrinfo, real_connect, real_connect_ex = (socket.getaddrinfo, socket.socket.connect,
                                                       socket.socket.connect_ex)  # fmt: skip

    def refuse(host: object) -> None:
        raise NetworkInTestError(f"{where} reached for {host!r} over the network; mark it @pytest.mark.network")

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if not _is_local(host.decode() if isinstance(host, bytes) else host):
            refuse(host)
        return real_getaddrinfo(host, *args, **kwargs)

    def checked(real: Any) -> Any:
        def connect(self: socket.socket, address: Any) -> Any:
            if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address[0]):
                refuse(address)
            return real(self, address)

        return connect

    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]
    socket.socket.connect = checked(real_connect)  # type: ignore[method-assign]
    socket.socket.connect_ex = checked(real_connect_ex)  # type: ignore[method-assign]
    try:
        yield
    finally:
        socket.getaddrinfo = real_getaddrinfo  # type: ignore[assignment]
        socket.socket.connect, socket.socket.connect_ex = real_connect, real_connect_ex  # type: ignore[method-assign]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    # Guarded from setup on, so that a module or session fixture built for an unmarked test is guarded too.
    if item.get_closest_marker("network"):
        return (yield)
    with _local_only(item.nodeid):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    if item.get_closest_marker("network"):
        return (yield)
    with _local_only(item.nodeid):
        return (yield)


@pytest.fixture(scope="session")
def shard_factory(tmp_path_factory: pytest.TempPathFactory) -> ShardFactory:
    """The one source of test shards: each kind built once per session, shared read-only by every module."""
    return ShardFactory(tmp_path_factory)


@pytest.fixture
def writable_shards(tmp_path: Path) -> Callable[[Path], Path]:
    """Copies a shared shard root into this test's own folder, for a test that changes files in it."""

    def copy(root: Path) -> Path:
        return Path(shutil.copytree(root, tmp_path / f"{root.name}-copy"))

    return copy


@pytest.fixture(scope="session")
def chunked_toy_shards(shard_factory: ShardFactory) -> Path:
    """Toy shards (10 speakers x 4 clips, one held out) in small chunks, so splits across ranks and workers are real."""
    return shard_factory.toy(speakers=10, clips_per_speaker=4, held_out=1, chunk_bytes="64KB")


@pytest.fixture(scope="session")
def prepare_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The mp4 corpus ``s2f prepare`` is tested on (:func:`helpers.corpus.build_corpus`), written once and read by
    every module; a test that adds or changes a video copies the folder first."""
    from helpers.corpus import build_corpus

    root = tmp_path_factory.mktemp("prepare-corpus")
    build_corpus(root)
    return root
