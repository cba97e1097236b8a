"""What ansible-core builds, parses or compiles again in every run, kept from one run to the next for the tests (issue
24): the AnsiballZ payloads of its modules, the static YAML every ansible-core process reads at its start, and the
code of its Jinja templates.

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

The same folder keeps two files every ansible-core process parses again at its start, once it is known they did not
change: the routing of ``ansible.builtin`` (``config/ansible_builtin_runtime.yml``, 370 KB, ~50 ms of YAML) and any
collection's ``meta/runtime.yml`` (``_collection_finder._meta_yml_to_dict``, which ansible-core documents as the place
"to cache the output"), and its configuration definitions (``config/base.yml``, ~16 ms; ``ConfigManager.
_read_config_yaml_file``). Under ``yaml/`` the parsed value is kept, pickled, named by the SHA-256 of what was parsed
(the file's bytes, the parser and PyYAML's version): an edited file is parsed again. Measured on a one-task playbook,
6 pairs interleaved: ~0.05 CPU-s less a run, of ~0.65 (the CI run starts ~950 ansible-core processes).

And the code Jinja generates and compiles for ansible-core's templates and ``when`` expressions (``jinja/``): each task
runs in a worker forked from the controller, which compiles every template it renders again and loses the code when it
ends (a healthy ``full_recovery.yml``: ~1,100 compiles, ~0.86 CPU-s). ``AnsibleEnvironment.compile`` is wrapped: the
entry is named by the SHA-256 of the source (a template's, or the expression ``compile_expression`` parsed), Jinja's
and ansible-core's versions and every setting of the environment the generated code depends on (delimiters, the
code generator, finalize, extensions, the sandbox's intercepted operators, ansible-core's embedded-template and
backslash settings); it holds the code object (marshal) and each filter and test the template names with how it
resolved (Jinja's code generator asks the environment for each: whether it is found and which context it is passed).
An entry is used only while they resolve alike; otherwise, or when anything is unexpected, Jinja compiles as usual.
Measured on a healthy ``full_recovery.yml`` with the payloads kept, 4 pairs interleaved: 8.80 -> 8.29 CPU-s.

scripts/test.sh sets the variable for the tests only (users' runs, the benchmarks' baselines and the machine-speed
reference build their payloads, parse their files and compile their templates as ansible-core does). When ansible-core's builder or parsers are
not what this was written against (``_find_module_utils`` and its keyword arguments, ``_meta_yml_to_dict``,
``ConfigManager._read_config_yaml_file``, ``AnsibleEnvironment`` and its compile context: ansible-core 2.19), that part
is not changed.
"""

from __future__ import annotations

import os
import sys

from tradeops_dr.payload_bytecode import usable

ENV = "TRADEOPS_DR_ANSIBALLZ_CACHE"
_BUILDER = "ansible.executor.module_common"
_ROUTING = "ansible.utils.collection_loader._collection_finder"
_CONFIG = "ansible.config.manager"
_JINJA = "ansible._internal._templating._jinja_bits"
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


def parsed(folder: str, what: str, data: bytes, parse):
    """``parse()``'s value for ``data``, read back from ``folder``/yaml when the same bytes were parsed before by the
    same parser and PyYAML; parsed and kept otherwise. Any trouble with the folder: parsed as usual."""
    # pylint: disable=import-outside-toplevel  # here, not in every Python of the venv the .pth starts
    import hashlib
    import pickle

    import yaml

    digest = hashlib.sha256(f"{what}\0{yaml.__version__}\0{getattr(yaml, '__with_libyaml__', False)}\0".encode()
                            + data).hexdigest()
    sub = os.path.join(folder, "yaml")
    path = os.path.join(sub, digest)
    try:
        with open(path, "rb") as handle:
            return pickle.load(handle)
    except Exception:  # pylint: disable=broad-exception-caught  # not kept yet (or unreadable): parse it
        pass
    value = parse()
    try:
        _keep(sub, digest, pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
    except Exception:  # pylint: disable=broad-exception-caught  # not kept: the next run parses it again
        pass
    return value


def _keep(sub: str, digest: str, data: bytes) -> None:
    """Write ``data`` as ``sub``/``digest``, whole or not at all: a new file (O_EXCL, 0600) in a folder of this
    account's alone, renamed over the name."""
    import tempfile  # pylint: disable=import-outside-toplevel

    os.makedirs(sub, mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=sub)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, os.path.join(sub, digest))
    except BaseException:
        os.unlink(tmp)
        raise


def _wrap(owner, name: str, make) -> bool:
    """Replace ``owner.<name>`` by ``make(original)``, once (the wrapper is marked); False when there is none."""
    original = getattr(owner, name, None)
    if original is None:
        return False
    if not getattr(original, _MARK, False):
        wrapper = make(original)
        setattr(wrapper, _MARK, True)
        setattr(owner, name, wrapper)
    return True


def patch_routing(finder, folder: str) -> bool:
    """Keep the parsed ``meta/runtime.yml`` files (ansible.builtin's routing among them) under ``folder``."""

    def make(to_dict):
        def _meta_yml_to_dict(yaml_string_data, content_id):
            data = yaml_string_data if isinstance(yaml_string_data, bytes) else str(yaml_string_data).encode()
            return parsed(folder, "collection meta", data, lambda: to_dict(yaml_string_data, content_id))
        return _meta_yml_to_dict

    return _wrap(finder, "_meta_yml_to_dict", make)


def patch_config(manager, folder: str) -> bool:
    """Keep the parsed configuration definitions (ansible-core's config/base.yml) under ``folder``."""

    def make(read):
        def _read_config_yaml_file(self, yml_file):
            try:
                with open(yml_file, "rb") as handle:
                    data = handle.read()
            except Exception:  # pylint: disable=broad-exception-caught  # ansible-core's own error for a missing file
                return read(self, yml_file)
            return parsed(folder, "config definitions", data, lambda: read(self, yml_file))
        return _read_config_yaml_file

    return _wrap(getattr(manager, "ConfigManager", None), "_read_config_yaml_file", make)


_SETTINGS = ("block_start_string", "block_end_string", "variable_start_string", "variable_end_string",
             "comment_start_string", "comment_end_string", "line_statement_prefix", "line_comment_prefix",
             "trim_blocks", "lstrip_blocks", "newline_sequence", "keep_trailing_newline", "optimized", "is_async")


def _name(obj) -> str:
    return f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', type(obj).__qualname__)}"


def _plugins_used(env, tree) -> tuple | None:
    """(kind, name, how it is passed the context) of every filter and test a template's tree names, as this
    environment resolves them now: what the generated code depends on beyond the source (Jinja's code generator
    asks the environment for each). None when one cannot be resolved."""
    from jinja2 import nodes  # pylint: disable=import-outside-toplevel
    from jinja2.utils import _PassArg  # pylint: disable=import-outside-toplevel

    used = []
    for node in tree.find_all((nodes.Filter, nodes.Test)):
        kind = "filter" if isinstance(node, nodes.Filter) else "test"
        try:
            func = (env.filters if kind == "filter" else env.tests).get(node.name)
        except Exception:  # pylint: disable=broad-exception-caught  # a plugin that fails to load: compile as usual
            return None
        passed = _PassArg.from_obj(func) if func is not None else None
        used.append((kind, node.name, "missing" if func is None else (passed.name if passed else "")))
    return tuple(sorted(set(used)))


def _still_resolve(env, used) -> bool:
    from jinja2.utils import _PassArg  # pylint: disable=import-outside-toplevel

    for kind, plugin, how in used:
        try:
            func = (env.filters if kind == "filter" else env.tests).get(plugin)
        except Exception:  # pylint: disable=broad-exception-caught
            return False
        passed = _PassArg.from_obj(func) if func is not None else None
        if how != ("missing" if func is None else (passed.name if passed else "")):
            return False
    return True


def patch_jinja(bits, folder: str) -> bool:
    """Keep the code Jinja generates and compiles for ansible-core's templates and expressions under ``folder``
    (``jinja/``): every forked worker compiled them again, and lost them when it ended."""
    # pylint: disable=protected-access
    env_class = getattr(bits, "AnsibleEnvironment", None)
    compile_context = getattr(bits, "_TemplateCompileContext", None)
    template_config = getattr(bits, "_TemplateConfig", None)
    if env_class is None or compile_context is None or not hasattr(template_config, "allow_embedded_templates"):
        return False
    compile_source = env_class.compile
    compile_expression = env_class.compile_expression
    if getattr(compile_source, _MARK, False):
        return True
    import threading  # pylint: disable=import-outside-toplevel

    state = threading.local()

    def key(env, kind, text, name, filename, defer_init) -> str | None:
        import hashlib  # pylint: disable=import-outside-toplevel

        import jinja2  # pylint: disable=import-outside-toplevel
        from ansible.release import __version__  # pylint: disable=import-outside-toplevel

        try:
            current = compile_context.current(optional=True)
            escape = getattr(current, "escape_backslashes", None)
            settings = [repr(getattr(env, s)) for s in _SETTINGS]
            settings += [_name(type(env)), _name(env.code_generator_class), _name(env.finalize),
                         repr(env.autoescape) if isinstance(env.autoescape, bool) else _name(env.autoescape),
                         repr(sorted(env.extensions)), repr(sorted(getattr(env, "intercepted_binops", ()))),
                         repr(sorted(getattr(env, "intercepted_unops", ()))),
                         repr(template_config.allow_embedded_templates), repr(escape)]
        except Exception:  # pylint: disable=broad-exception-caught  # an environment this does not know: no cache
            return None
        head = "\0".join([jinja2.__version__, __version__, kind, repr(name), repr(filename), repr(defer_init), *settings])
        return hashlib.sha256(head.encode() + b"\0" + text.encode("utf-8", "surrogatepass")).hexdigest()

    def cached_compile(self, source, name=None, filename=None, raw=False, defer_init=False):
        expression, state.expression = getattr(state, "expression", None), None
        if raw or getattr(self, "_debuggable_template_source", False):
            return compile_source(self, source, name, filename, raw, defer_init)
        if isinstance(source, str):
            kind, text = "template", str(source)
        elif expression is not None:
            kind, text = "expression", expression  # the tree compile_expression parsed from it
        else:
            return compile_source(self, source, name, filename, raw, defer_init)
        digest = key(self, kind, text, name, filename, defer_init)
        if digest is None:
            return compile_source(self, source, name, filename, raw, defer_init)
        import marshal  # pylint: disable=import-outside-toplevel

        path = os.path.join(folder, "jinja", digest)
        try:
            with open(path, "rb") as handle:
                used, code = marshal.loads(handle.read())
            if _still_resolve(self, used):
                return code
        except Exception:  # pylint: disable=broad-exception-caught  # not kept yet, or unreadable: compile it
            pass
        code = compile_source(self, source, name, filename, raw, defer_init)
        try:
            tree = self._parse(text, name, filename) if kind == "template" else source
            used = _plugins_used(self, tree)
            if used is not None:
                _keep(os.path.join(folder, "jinja"), digest, marshal.dumps((used, code)))
        except Exception:  # pylint: disable=broad-exception-caught  # not kept: the next process compiles it again
            pass
        return code

    def cached_compile_expression(self, source, *args, **kwargs):
        state.expression = str(source)
        try:
            return compile_expression(self, source, *args, **kwargs)
        finally:
            state.expression = None

    for wrapper in (cached_compile, cached_compile_expression):
        setattr(wrapper, _MARK, True)
    env_class.compile = cached_compile
    env_class.compile_expression = cached_compile_expression
    return True


_PATCHES = {_BUILDER: patch, _ROUTING: patch_routing, _CONFIG: patch_config, _JINJA: patch_jinja}


class _Loader:  # importlib's loader protocol (importlib.abc is not imported at every Python's start for it)
    """ansible-core's own loader for one of the modules this patches, then its patch."""

    def __init__(self, loader, folder: str, patcher):
        self._loader = loader
        self._folder = folder
        self._patch = patcher

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        self._patch(module, self._folder)

    def __getattr__(self, name):  # get_source, get_filename...: what tracebacks and inspect ask the module's loader
        return getattr(self._loader, name)


class _Finder:  # a meta path finder (likewise)
    """Finds nothing itself: hands the spec of each module it patches, found by the other finders, to
    :class:`_Loader`; leaves the meta path once it has handed them all."""

    def __init__(self, folder: str, waiting: list[str]):
        self._folder = folder
        self._waiting = waiting

    def find_spec(self, fullname, path, _target=None):
        if fullname not in self._waiting:
            return None
        self._waiting.remove(fullname)
        if not self._waiting:
            sys.meta_path.remove(self)
        import importlib.machinery  # pylint: disable=import-outside-toplevel

        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _Loader(spec.loader, self._folder, _PATCHES[fullname])
        return spec


def install(folder: str | None = None) -> bool:
    """Keep the payloads and the parsed files in ``folder`` (default: $TRADEOPS_DR_ANSIBALLZ_CACHE) from now on;
    True when it will."""
    folder = folder or os.environ.get(ENV, "")
    if not folder or not usable(folder):
        return False
    waiting = []
    for name, patcher in _PATCHES.items():
        if name in sys.modules:
            patcher(sys.modules[name], folder)
        else:
            waiting.append(name)
    if waiting and not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder(folder, waiting))
    return True
