"""The layers point one way: the CLI and the Python API (src/) run the collection's playbooks and the
stand-ins of their own package, never a file under tests/; modules import only module_utils (and
Ansible); module_utils import nothing of modules, plugins or src."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = sorted((ROOT / "src" / "tradeops_dr").rglob("*.py"))
COLLECTION = "ansible_collections.tradeops.dr.plugins."


def _docstrings(tree) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def _imports(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.append(node.module)
    return out


def _tests_paths(path: Path) -> list[str]:
    """The string constants of a file's code (not its docstrings) that name the tests folder."""
    tree = ast.parse(path.read_text())
    docs = _docstrings(tree)
    return [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
            and id(n) not in docs and (n.value == "tests" or n.value.startswith("tests/") or "/tests/" in n.value)]


@pytest.mark.parametrize("path", SRC, ids=lambda p: str(p.relative_to(ROOT)))
def test_src_never_reaches_into_tests(path):
    assert _tests_paths(path) == []
    assert not [m for m in _imports(path) if m == "tests" or m.startswith("tests.")]


def test_the_check_sees_a_path_into_tests(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text('"""A docstring may name tests/standins."""\nX = ROOT / "tests" / "standins"\nY = "tests/x.py"\n')
    assert sorted(_tests_paths(bad)) == ["tests", "tests/x.py"]


@pytest.mark.parametrize("path", sorted((ROOT / "plugins" / "modules").glob("*.py")), ids=lambda p: p.name)
def test_modules_import_only_module_utils(path):
    ours = [m for m in _imports(path) if m.startswith(COLLECTION)]
    assert [m for m in ours if not m.startswith(COLLECTION + "module_utils")] == []


@pytest.mark.parametrize("path", sorted((ROOT / "plugins" / "module_utils").glob("*.py")), ids=lambda p: p.name)
def test_module_utils_import_no_upper_layer(path):
    imports = _imports(path)
    assert [m for m in imports if m.startswith(COLLECTION) and not m.startswith(COLLECTION + "module_utils")] == []
    assert [m for m in imports if m.startswith("tradeops_dr")] == []


@pytest.mark.parametrize("path", sorted((ROOT / "plugins" / "module_utils").glob("_*.py")), ids=lambda p: p.name)
def test_every_private_module_util_says_so(path):
    assert "This module_utils is PRIVATE to the tradeops.dr collection" in path.read_text()[:600]


def _bare_failures(path: Path) -> list[int]:
    """Lines of fail_json calls inside an except clause without the traceback (community.postgresql's habit)."""
    out = []
    for handler in ast.walk(ast.parse(path.read_text())):
        if isinstance(handler, ast.ExceptHandler):
            out += [node.lineno for node in ast.walk(handler) if isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute) and node.func.attr == "fail_json"
                    and not any(k.arg == "exception" for k in node.keywords)]
    return sorted(set(out))


@pytest.mark.parametrize("path", sorted((ROOT / "plugins" / "modules").glob("*.py")), ids=lambda p: p.name)
def test_a_module_that_fails_on_an_exception_passes_its_traceback(path):
    assert _bare_failures(path) == []


def test_the_traceback_check_sees_a_bare_failure(tmp_path):
    bad = tmp_path / "m.py"
    bad.write_text("try:\n    x()\nexcept OSError as exc:\n    module.fail_json(msg=str(exc))\n"
                   "try:\n    y()\nexcept OSError:\n    module.fail_json(msg='y', exception=traceback.format_exc())\n")
    assert _bare_failures(bad) == [4]


def _private_calls(path: Path) -> list[str]:
    """`_module_util._private` used from another file: a helper that is private to its file."""
    tree = ast.parse(path.read_text())
    mus = {p.stem for p in (ROOT / "plugins" / "module_utils").glob("_*.py")}
    return sorted({f"{n.value.id}.{n.attr}" for n in ast.walk(tree) if isinstance(n, ast.Attribute)
                   and isinstance(n.value, ast.Name) and n.value.id in mus and n.value.id != path.stem
                   and n.attr.startswith("_") and not n.attr.startswith("__")})


@pytest.mark.parametrize("path", sorted((ROOT / "plugins").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_private_helper_is_called_across_files(path):
    assert _private_calls(path) == []


def _loads(path: Path, seen: set[str] | None = None) -> set[str]:
    """The top-level packages a module or module_util loads when imported: its own imports and those of the
    module_utils it imports, transitively (every import statement, module-level or not)."""
    seen = set() if seen is None else seen
    utils, out = [], set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module == COLLECTION + "module_utils":
            utils += [a.name for a in node.names]  # from ...module_utils import _a, _b
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(COLLECTION + "module_utils."):
            utils.append(node.module.rsplit(".", 1)[1])  # from ...module_utils._a import x
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module.split(".")[0])
    for util in set(utils) - seen:
        seen.add(util)
        out |= _loads(ROOT / "plugins" / "module_utils" / (util + ".py"), seen)
    return out


def test_only_the_exchange_modules_load_an_exchange_library():
    """ccxt takes a quarter of a second to import, in every run of a module that loads it: a module that does not
    talk to an exchange must not load it through a module_util (strategy_health did, for a log-line scrubber,
    in every diagnosis of a strategy)."""
    loading = {p.stem for p in (ROOT / "plugins" / "modules").glob("*.py") if "ccxt" in _loads(p)}
    assert loading == {"exchange_info", "exchange_orders", "position_reconcile"}
