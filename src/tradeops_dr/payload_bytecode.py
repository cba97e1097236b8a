"""A bytecode cache for the code Ansible's modules import from their AnsiballZ payload (the test suite's, issue 24).

Every module run is a new Python that imports ansible-core's module_utils and the collection's from a zip file
written for that run; Python's zipimport compiles that source each time and cannot keep the bytecode (it never
writes into an archive, and ``__pycache__`` does not apply to one). On the test machine that compile was ~40 % of
a module run's CPU (``ansible.builtin.ping`` from a kept payload: 0.19 CPU-s, 0.11 with this cache), and a CI run
makes ~2,300 module runs.

With ``TRADEOPS_DR_PAYLOAD_BYTECODE`` naming a folder, the venv's ``tradeops_dr_payload_bytecode.pth`` (this
folder's payload_bytecode.pth, installed by scripts/setup.sh) calls :func:`install` at the start of each of the
venv's Pythons, which wraps zipimport's compile step: the code object of a source seen before is read back from the folder instead of compiled again, as
Python's own ``__pycache__`` does for files. The key is the SHA-256 of the interpreter's bytecode magic, its
optimisation level and the source itself, so a changed module, module_utils or interpreter never reads stale
code; the file name the code reports in tracebacks is set to this run's path. Nothing else about a module run
changes. scripts/test.sh sets the variable for the tests only (the benchmarks and users' runs do not); a folder
that is not this account's alone, or that cannot be read or written, is not used and the source is compiled as
usual. The rehearsals' containers get this file and the same .pth: molecule/shared/create.yml mounts both when the
variable is set (``tradeops_dr`` there holds this file alone).
"""

from __future__ import annotations

import os
import stat
import sys

_MARK = "_tradeops_dr_cached"


def usable(folder: str) -> bool:
    """Only a folder of this account's that nobody else can write: its files become code."""
    try:
        st = os.lstat(folder)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o022


def install(folder: str | None = None) -> bool:
    """Wrap zipimport's compile step with the cache in ``folder``; True when it did (idempotent)."""
    folder = folder or os.environ.get("TRADEOPS_DR_PAYLOAD_BYTECODE", "")
    if not folder or not usable(folder):
        return False
    import zipimport  # pylint: disable=import-outside-toplevel  # already loaded: it is one of Python's path hooks

    compile_source = zipimport._compile_source  # pylint: disable=protected-access
    if getattr(compile_source, _MARK, False):
        return True

    def cached_compile_source(pathname, source):
        if ".zip" not in pathname:  # AnsiballZ payloads only; nothing else imports from a zip here
            return compile_source(pathname, source)
        import _imp  # pylint: disable=import-outside-toplevel
        import hashlib  # pylint: disable=import-outside-toplevel
        import importlib.util  # pylint: disable=import-outside-toplevel
        import marshal  # pylint: disable=import-outside-toplevel

        digest = hashlib.sha256(importlib.util.MAGIC_NUMBER + bytes([sys.flags.optimize]) + source).hexdigest()
        path = os.path.join(folder, digest)
        try:
            with open(path, "rb") as cached:
                code = marshal.loads(cached.read())
            _imp._fix_co_filename(code, pathname)  # pylint: disable=protected-access
            return code
        except (OSError, EOFError, ValueError, TypeError):
            pass
        code = compile_source(pathname, source)
        # a new file of its own (O_EXCL, no link followed), renamed into place: a reader sees all of it or nothing
        part = f"{path}.{os.getpid()}.{os.urandom(4).hex()}"
        try:
            with os.fdopen(os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600), "wb") as new:
                new.write(marshal.dumps(code))
            os.replace(part, path)
        except OSError:
            try:
                os.unlink(part)
            except OSError:
                pass
        return code

    setattr(cached_compile_source, _MARK, True)
    zipimport._compile_source = cached_compile_source  # pylint: disable=protected-access
    return True
