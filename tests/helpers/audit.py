"""What a piece of code does to the machine, seen through ``sys.addaudithook``.

:func:`audited` records, while its block runs, every event by which loading a model folder could
reach beyond that folder: a file opened outside it (or opened for writing anywhere), a file created,
moved or removed, any socket event (a name lookup included), a subprocess or ``os.system``, an import
of a module that belongs neither to the standard library nor to s2f and the packages it declares
(with their own dependencies), and every ``pickle.find_class``. Reading installed code and data
(the interpreter's prefix, site-packages, s2f's own source tree) is what an import does and is not
recorded; the import itself is judged by its module's name.

An audit hook cannot be removed, so one hook is installed on first use and records only while a
block is active.
"""

from __future__ import annotations

import os
import re
import site
import sys
import sysconfig
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from importlib import metadata
from pathlib import Path

import s2f

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_PROCESS_EVENTS = ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "pty.spawn")
_CHANGE_EVENTS = ("os.mkdir", "os.remove", "os.rename", "os.rmdir", "os.symlink", "os.link", "os.truncate", "shutil.")
# Kernel files the runtime reads for the CPU's features and count (torch, numpy): no user data.
_SYSTEM_READS = ("/proc/", "/sys/devices/system/cpu", "/sys/fs/cgroup", "/dev/null", "/dev/urandom", "/etc/ld.so")


@dataclass
class Audit:
    """The events seen while one block ran; ``events`` is empty when the code kept to ``folder``."""

    folder: Path
    owned: tuple[str, ...] = ()
    events: list[str] = field(default_factory=list)

    def see(self, event: str, args: tuple) -> None:
        if event == "open":
            self._open(*args[:3])
        elif event.startswith(("socket.", *_PROCESS_EVENTS)) or event in ("urllib.Request", "http.client.connect"):
            self.events.append(f"{event} {_short(args)}")
        elif event.startswith(_CHANGE_EVENTS):
            if not (args and isinstance(args[0], (str, bytes, os.PathLike)) and self._owns(os.fsdecode(args[0]))):
                self.events.append(f"{event} {_short(args)}")
        elif event == "import":
            top = str(args[0]).split(".", 1)[0]
            if top not in allowed_imports():
                self.events.append(f"import {args[0]}")
        elif event == "pickle.find_class":
            self.events.append(f"pickle.find_class {_short(args)}")

    def _open(self, path: object, mode: object, flags: object) -> None:
        if not isinstance(path, (str, bytes, os.PathLike)):
            return  # a file descriptor that is already open
        text = os.fsdecode(path)
        if text in sys.path or self._owns(text):
            return  # the import system asking a sys.path entry (an editable install's finder) for its files
        writes = (isinstance(mode, str) and bool(set(mode) & set("wax+"))) or (
            isinstance(flags, int) and bool(flags & _WRITE_FLAGS)
        )
        real = os.path.realpath(text)
        if writes:
            self.events.append(f"open for writing {text}")
        elif not (_inside(real, os.path.realpath(self.folder)) or _installed(real)):
            self.events.append(f"open {text}" + (f" -> {real}" if real != os.path.abspath(text) else ""))

    def _owns(self, path: str) -> bool:
        return path.startswith(self.owned) if self.owned else False


_ACTIVE: list[Audit] = []
_BUSY = [False]


def _hook(event: str, args: tuple) -> None:
    if not _ACTIVE or _BUSY[0]:
        return
    _BUSY[0] = True  # the checks themselves stat paths and read metadata
    try:
        _ACTIVE[-1].see(event, args)
    finally:
        _BUSY[0] = False


_INSTALLED: list[bool] = []


@contextmanager
def audited(folder: Path, *, owned: tuple[str, ...] = ()) -> Iterator[Audit]:
    """Records what the block does beyond ``folder`` (see the module's docstring).

    Args:
        folder: The model folder the block may read.
        owned: Path prefixes the code under test makes and removes for itself (``s2f serve``'s upload
            folder), whose creation and removal are not recorded.
    """
    allowed_imports()  # computed before recording: reading package metadata opens files
    if not _INSTALLED:
        sys.addaudithook(_hook)
        _INSTALLED.append(True)
    audit = Audit(Path(folder), owned)
    _ACTIVE.append(audit)
    try:
        yield audit
    finally:
        _ACTIVE.pop()


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


@cache
def _code_roots() -> tuple[str, ...]:
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, *site.getsitepackages(), site.getusersitepackages()}
    roots.update(p for p in sysconfig.get_paths().values() if p)
    roots.add(str(Path(s2f.__file__).parent))
    return tuple(os.path.realpath(root) for root in roots)


def _installed(path: str) -> bool:
    return path.startswith(_SYSTEM_READS) or any(_inside(path, root) for root in _code_roots())


@cache
def allowed_imports() -> frozenset[str]:
    """Top-level modules loading may import: the standard library, s2f, and every distribution s2f
    declares (all extras) with their own requirements, transitively."""
    names = set(sys.stdlib_module_names) | set(sys.builtin_module_names) | {"s2f", "__main__"}
    wanted, seen = ["s2f"], set()
    while wanted:
        name = _canonical(wanted.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for requirement in requires:
            own_extra = name == "s2f"  # s2f's extras are all declared; a dependency's extras are not wanted
            if "extra ==" in requirement and not own_extra:
                continue
            wanted.append(re.split(r"[\s\[<>=!~;(]", requirement, maxsplit=1)[0])
    for module, distributions in metadata.packages_distributions().items():
        if any(_canonical(d) in seen for d in distributions):
            names.add(module)
    return frozenset(names)


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _short(args: tuple) -> str:
    text = repr(args)
    return text if len(text) <= 160 else text[:157] + "..."
