"""The collection as users meet it: every module documented and rendered by ansible-doc,
every role with an argument spec, every playbook valid, ansible-lint clean."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
MODULES = sorted(p.stem for p in (ROOT / "plugins" / "modules").glob("*.py") if not p.name.startswith("_"))
ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if p.is_dir())
PLAYBOOKS = sorted((ROOT / "playbooks").glob("*.yml"))
BIN = Path(sys.executable).parent
ENV = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")

pytestmark = pytest.mark.lint


def _run(*argv, timeout=600):
    return subprocess.run([str(BIN / argv[0]), *argv[1:]], cwd=ROOT, env=ENV, capture_output=True, text=True,
                          timeout=timeout, check=False)


def test_there_is_something_to_check():
    assert MODULES and ROLES and PLAYBOOKS


def _sections(text: str, header: str) -> dict:
    """ansible-doc's text for several plugins, split at each one's header line ('> MODULE name (path)',
    '> ROLE: *name* (path)')."""
    out: dict = {}
    name = None
    for line in text.splitlines():
        if line.startswith(header):
            name = line[len(header):].split()[0].strip("*")
            out[name] = ""
        if name:
            out[name] += line + "\n"
    return out


# One ansible-doc a form for every module (or role) at once, not one per test: each ansible-doc
# start costs about a CPU-second, and the tests below read each plugin's own entry or section.
@pytest.fixture(scope="module")
def module_docs():
    res = _run("ansible-doc", "--json", *(f"tradeops.dr.{m}" for m in MODULES))
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


@pytest.fixture(scope="module")
def module_texts():
    res = _run("ansible-doc", *(f"tradeops.dr.{m}" for m in MODULES))
    return res.returncode, _sections(res.stdout, "> MODULE "), res.stderr


@pytest.fixture(scope="module")
def role_texts():
    res = _run("ansible-doc", "-t", "role", *(f"tradeops.dr.{r}" for r in ROLES))
    return res.returncode, _sections(res.stdout, "> ROLE: "), res.stderr


@pytest.mark.parametrize("module", MODULES)
def test_ansible_doc_renders_the_module(module, module_docs, module_texts):
    doc = module_docs[f"tradeops.dr.{module}"]
    assert doc["doc"]["short_description"] and doc["doc"]["options"]
    assert doc["examples"].strip() and doc["return"], f"{module}: EXAMPLES and RETURN are required"
    assert "check_mode" in doc["doc"]["attributes"]
    for name, opt in doc["doc"]["options"].items():
        assert opt.get("description"), f"{module}: option {name} has no description"
    rc, sections, stderr = module_texts
    assert rc == 0, stderr
    assert f"tradeops.dr.{module}" in sections and sections[f"tradeops.dr.{module}"].strip(), stderr


class _Spec(Exception):
    def __init__(self, spec):
        super().__init__("argument spec captured")
        self.spec = spec


def _argument_spec(module: str) -> dict:
    """The argument spec the module really passes to AnsibleModule (captured when main() builds it)."""
    import importlib
    from unittest import mock

    from ansible.module_utils import basic

    mod = importlib.import_module(f"ansible_collections.tradeops.dr.plugins.modules.{module}")

    def capture(self, argument_spec=None, **_kw):
        raise _Spec(argument_spec)

    with mock.patch.object(basic.AnsibleModule, "__init__", capture):
        with mock.patch.object(mod, "AnsibleModule", basic.AnsibleModule), pytest.raises(_Spec) as got:
            mod.main()
    return got.value.spec


def _secret_options(spec: dict, path: str = "") -> list[tuple[str, dict]]:
    out = []
    for name, opt in (spec or {}).items():
        if any(word in name for word in ("password", "secret", "token")):
            out.append((path + name, opt))
        out += _secret_options(opt.get("options"), f"{path}{name}.")
    return out


@pytest.mark.parametrize("module", MODULES)
def test_password_options_are_no_log(module, module_docs):
    """Each module's own argument spec, as it reaches AnsibleModule: a module that redefines a
    password option without no_log fails here, whatever the shared specs say."""
    spec = _argument_spec(module)
    doc = module_docs[f"tradeops.dr.{module}"]
    documented = [name for name in doc["doc"]["options"] if "password" in name]
    assert set(documented) <= set(spec), f"{module}: documented but not in the spec: {set(documented) - set(spec)}"
    for name, opt in _secret_options(spec):
        assert opt.get("no_log") is True, f"{module}: option {name} must be no_log"


def test_the_no_log_check_catches_a_module_without_it(monkeypatch):
    from ansible_collections.tradeops.dr.plugins.module_utils import _redis

    original = _redis.redis_common_argument_spec

    def leaky():
        spec = original()
        spec["login_password"] = dict(type="str")
        return spec

    monkeypatch.setattr(_redis, "redis_common_argument_spec", leaky)
    doc = json.loads(_run("ansible-doc", "--json", "tradeops.dr.redis_health").stdout)
    with pytest.raises(AssertionError, match="login_password must be no_log"):
        test_password_options_are_no_log("redis_health", doc)


@pytest.mark.parametrize("role", ROLES)
def test_role_has_an_argument_spec_and_prefixed_variables(role, role_texts):
    spec = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())
    options = spec["argument_specs"]["main"]["options"]
    defaults = yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text()) or {}
    assert all(k.startswith(role + "_") for k in options), "role variables carry the role's name"
    assert set(defaults) <= set(options), f"defaults without a spec: {set(defaults) - set(options)}"
    rc, sections, stderr = role_texts
    assert rc == 0 and "ENTRY POINT: *main*" in sections.get(f"tradeops.dr.{role}", ""), stderr


def test_playbook_syntax():
    """Every playbook in one `ansible-playbook --syntax-check` (it takes several): 2 s instead of 24 s for one
    command per playbook, each paying Ansible's start (issue 24). A failure names its playbook; each one checked
    is listed."""
    res = _run("ansible-playbook", "--syntax-check", "-i", "localhost,", *map(str, PLAYBOOKS))
    assert res.returncode == 0, res.stderr + res.stdout
    assert [line.split(": ", 1)[1] for line in res.stdout.splitlines() if line.startswith("playbook: ")] == \
        list(map(str, PLAYBOOKS)), res.stdout


def test_ansible_lint_production_profile():
    res = _run("ansible-lint", "--profile", "production", "--nocolor", timeout=900)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    assert "Profile 'production' was required, and it passed" in res.stdout + res.stderr


@pytest.mark.parametrize("fragment", sorted((ROOT / "changelogs" / "fragments").glob("*.yml")), ids=lambda p: p.name)
def test_changelog_fragments_are_lists_of_strings(fragment):
    """antsibull-changelog's shape: sections of string items (a stray ': ' makes a mapping)."""
    doc = yaml.safe_load(fragment.read_text())
    assert isinstance(doc, dict) and doc
    for section, items in doc.items():
        assert isinstance(items, list) and all(isinstance(i, str) for i in items), f"{fragment.name}: {section}"
