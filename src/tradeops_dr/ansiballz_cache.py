"""The AnsiballZ payloads Ansible builds, kept from one ansible-playbook run to the next (the test suite's, issue 24).

Before a module runs, the task's worker builds its payload (AnsiballZ): it parses the module and every module_utils
file it imports, recursively, to find what to put in the zip, and compresses them. ansible-core keeps that payload
for the rest of its own run only (``ansiballz_cache`` in the run's private temp folder), so each of a CI run's ~770
ansible-playbook runs builds its modules again. Measured on the sandbox (a healthy ``full_recovery.yml``, 3 pairs
interleaved): 11.9 CPU-s per run with a new cache each run, 10.5 with the payloads kept - ~0.15 CPU-s a build.

With ``TRADEOPS_DR_ANSIBALLZ_CACHE`` naming a folder of this account's alone, the venv's
``tradeops_dr_ansiballz_cache.pth`` (this folder's ansiballz_cache.pth, installed by scripts/setup.sh) calls
:func:`install` at the start of each of the venv's Pythons; once ansible-core's ``module_common`` is imported, its
payload builder looks for a payload in a sub-folder of that folder named by a digest of everything the payload is made
of: ansible-core's version, the module's path and source, and the size and modification time of every Python file
under the module_utils folders a build reads (ansible-core's, the module's own collection's, this collection's and
the configured module_utils paths). A changed module or module_utils file gets a new folder and a new build;
ansible-core's own per-run key (the module's name, the compression, the extensions) and locking apply inside it.
Imports of a third collection's module_utils are not in the digest (installed packages do not change during a test
run; scripts/test.sh makes the folder new each run). ansible-core reads its cache files with pickle: that is why the
folder must be this account's and nobody else's to write.

scripts/test.sh sets the variable for the tests only (users' runs, the benchmarks' baselines and the machine-speed
reference build their payloads as ansible-core does). When ansible-core's builder is not what this was written
against (``_find_module_utils`` and its keyword arguments, ansible-core 2.19), nothing is changed.
"""

from __future__ import annotations

import os
import sys

from tradeops_dr.payload_bytecode import usable

ENV = "TRADEOPS_DR_ANSIBALLZ_CACHE"
_TARGET = "ansible.executor.module_common"
_MARK = "_tradeops_dr_ansiballz_cache"
_OWN_MODULE_UTILS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                                 "plugins", "module_utils")
_trees: dict[str, bytes] = {}  # per process: a folder's fingerprint (a controller run's, or one worker's)


def _tree(root: str) -> bytes:
    """The sizes and modification times of every Python file under ``root`` (sorted), as bytes."""
    real = os.path.realpath(root)
    if real not in _trees:
        entries = []
        for folder, dirs, files in os.walk(real):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(files):
                if name.endswith(".py"):
                    try:
                        st = os.stat(os.path.join(folder, name))
                    except OSError:
                        continue
                    entries.append(f"{os.path.relpath(os.path.join(folder, name), real)}\0{st.st_size}\0"
                                   f"{st.st_mtime_ns}")
        _trees[real] = ("\n".join([real, *entries])).encode()
    return _trees[real]


def _collection_module_utils(module_path: str) -> str | None:
    """plugins/module_utils of the collection a module file is in (.../plugins/modules/name.py), if any."""
    modules = os.path.dirname(os.path.abspath(module_path))
    plugins = os.path.dirname(modules)
    if os.path.basename(modules) == "modules" and os.path.basename(plugins) == "plugins":
        return os.path.join(plugins, "module_utils")
    return None


def _fixed_roots(module_common) -> list[str]:
    """The module_utils folders every build may read: ansible-core's own and this collection's."""
    return [os.path.join(os.path.dirname(module_common.__file__), "..", "module_utils"), _OWN_MODULE_UTILS]


def key(module_common, module_path: str, module_data: bytes) -> str:
    """The digest naming the folder of one module's payloads: what its build reads."""
    import hashlib  # pylint: disable=import-outside-toplevel  # here, not in every Python of the venv the .pth starts
    from ansible.release import __version__  # pylint: disable=import-outside-toplevel

    roots = _fixed_roots(module_common)
    own = _collection_module_utils(module_path)
    if own:
        roots.append(own)
    try:  # the configured module_utils paths (roles', ANSIBLE_MODULE_UTILS) - ansible-core's own list
        roots.extend(module_common.module_utils_loader._get_paths(subdirs=False))  # pylint: disable=protected-access
    except Exception:  # pylint: disable=broad-exception-caught  # without them the digest is narrower, not wrong
        pass
    digest = hashlib.sha256(f"{__version__}\0{sys.version}\0{os.path.abspath(module_path)}\0".encode())
    digest.update(hashlib.sha256(module_data).digest())
    for root in sorted({os.path.realpath(r) for r in roots if os.path.isdir(r)}):
        digest.update(hashlib.sha256(_tree(root)).digest())
    return digest.hexdigest()


def patch(module_common, folder: str) -> bool:
    """Make ``module_common``'s payload builder keep its payloads under ``folder``; True when it did."""
    build = getattr(module_common, "_find_module_utils", None)
    constants = getattr(module_common, "C", None)
    if build is None or constants is None or not hasattr(constants, "DEFAULT_LOCAL_TMP"):
        return False
    if getattr(build, _MARK, False):
        return True

    def _find_module_utils(**kwargs):
        try:
            sub = os.path.join(folder, key(module_common, kwargs["module_path"], kwargs["b_module_data"]))
            os.makedirs(sub, mode=0o700, exist_ok=True)  # ansible-core makes what is inside
        except Exception:  # pylint: disable=broad-exception-caught  # not the arguments this knows: build as usual
            return build(**kwargs)
        # the builder names its cache folder from DEFAULT_LOCAL_TMP; a worker builds one module at a time, in its
        # own process (forked for the task), so the swap is seen by this build alone
        saved = constants.DEFAULT_LOCAL_TMP
        constants.DEFAULT_LOCAL_TMP = sub
        try:
            return build(**kwargs)
        finally:
            constants.DEFAULT_LOCAL_TMP = saved

    setattr(_find_module_utils, _MARK, True)
    module_common._find_module_utils = _find_module_utils  # pylint: disable=protected-access
    # fingerprinted once in the controller, before it forks its workers (each worker builds one module and ends)
    for root in _fixed_roots(module_common):
        if os.path.isdir(root):
            _tree(root)
    return True


class _Loader:  # importlib's loader protocol (importlib.abc is not imported at every Python's start for it)
    """ansible-core's own loader for module_common, then the patch."""

    def __init__(self, loader, folder: str):
        self._loader = loader
        self._folder = folder

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        patch(module, self._folder)

    def __getattr__(self, name):  # get_source, get_filename...: what tracebacks and inspect ask the module's loader
        return getattr(self._loader, name)


class _Finder:  # a meta path finder (likewise)
    """Finds nothing itself: hands module_common's spec, found by the other finders, to :class:`_Loader`."""

    def __init__(self, folder: str):
        self._folder = folder

    def find_spec(self, fullname, path, _target=None):
        if fullname != _TARGET:
            return None
        sys.meta_path.remove(self)
        import importlib.machinery  # pylint: disable=import-outside-toplevel

        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _Loader(spec.loader, self._folder)
        return spec


def install(folder: str | None = None) -> bool:
    """Keep the payloads in ``folder`` (default: $TRADEOPS_DR_ANSIBALLZ_CACHE) from now on; True when it will."""
    folder = folder or os.environ.get(ENV, "")
    if not folder or not usable(folder):
        return False
    if _TARGET in sys.modules:
        return patch(sys.modules[_TARGET], folder)
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder(folder))
    return True
