"""What drills leave behind: scores against the runbooks' objectives, a history users keep, a
report (Markdown table and a PNG chart of recovery time per scenario across drills), and the
guard that keeps drills away from inventories not marked as drill targets.

History: one JSON line per drill step in `<drills dir>/history.jsonl`
($TRADEOPS_DR_DRILLS_DIR, default ~/.local/share/tradeops-dr/drills, 0700)."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

from .paths import project_root

SPARK = "▁▂▃▄▅▆▇█"


class NotADrillTarget(Exception):
    pass


def drills_dir() -> Path:
    base = Path(os.environ.get("TRADEOPS_DR_DRILLS_DIR") or
                Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "tradeops-dr" / "drills")
    base.mkdir(parents=True, exist_ok=True)
    base.chmod(0o700)
    return base


def ansible_tool(name: str) -> str:
    """An Ansible command: beside this Python (a venv, not activated), else on PATH (a system pip
    install puts the scripts in /usr/local/bin, the interpreter in /usr/bin)."""
    import shutil

    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        raise NotADrillTarget(f"{name} is not installed beside {sys.executable} nor on PATH (pip install ansible-core)")
    return found


def inventory_vars(inventory: str) -> dict:
    """{host: vars} of an inventory, as ansible-inventory resolves group_vars (not templated)."""
    root = project_root()
    path = Path(inventory)
    if not path.exists():
        path = root / "inventories" / inventory
    from .api import _ansible_settings

    env = dict(os.environ, **_ansible_settings(root))
    out = subprocess.run([ansible_tool("ansible-inventory"), "-i", str(path), "--list"],
                         capture_output=True, text=True, env=env, timeout=120, check=False)
    if out.returncode != 0:
        raise NotADrillTarget(f"the inventory {path} cannot be read: {out.stderr.strip()[-500:]}")
    data = json.loads(out.stdout)
    hosts = set()
    for name, group in data.items():
        if name != "_meta" and isinstance(group, dict):
            hosts.update(group.get("hosts", []))
    hostvars = data.get("_meta", {}).get("hostvars", {})
    return {h: hostvars.get(h, {}) for h in sorted(hosts)}


def require_drill_target(inventory: str) -> dict:
    """The inventory's host vars, when every host is marked `dr_drill_target: true`; a drill
    injects real failures and must never reach production by mistake."""
    hosts = inventory_vars(inventory)
    if not hosts:
        raise NotADrillTarget(f"the inventory {inventory} has no host")
    unmarked = [h for h, v in hosts.items() if v.get("dr_drill_target") is not True]
    if unmarked:
        raise NotADrillTarget(
            f"REFUSED: {len(unmarked)} host(s) of {inventory} are not marked as drill targets ({', '.join(unmarked[:5])}"
            f"{', ...' if len(unmarked) > 5 else ''}): a drill injects real failures. Set dr_drill_target: true in the "
            "group_vars of an inventory made for drills (inventories/local, the sandbox, is one). Nothing was done.")
    return hosts


def objectives(hostvars: dict | None = None) -> dict:
    """The default objectives (playbooks/vars/drill_objectives.yml), overridden by the inventory's
    dr_drill_objectives."""
    with open(project_root() / "playbooks" / "vars" / "drill_objectives.yml") as handle:
        out = dict(yaml.safe_load(handle)["dr_drill_objectives_default"])
    for v in (hostvars or {}).values():
        override = v.get("dr_drill_objectives")
        if isinstance(override, dict):
            out.update({k: float(x) for k, x in override.items()})
            break
    return out


def append(steps, drill_id: str, inventory: str, path: Path | None = None) -> Path:
    path = path or drills_dir() / "history.jsonl"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as handle:
        for s in steps:
            handle.write(json.dumps(dict(drill=drill_id, at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                         inventory=inventory, scenario=s.scenario, passed=s.passed, met=s.met,
                                         seconds=round(s.seconds, 3), objective=s.objective, injected=s.injected),
                                    sort_keys=True) + "\n")
    return path


def load(path: Path | None = None) -> list[dict]:
    path = path or drills_dir() / "history.jsonl"
    if not path.exists():
        return []
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]


def chart(records: list[dict], path: Path) -> Path:
    """Recovery time per scenario across drills (one series each, log scale), its objective
    drawn as a dashed line of the same colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drills = sorted({r["drill"] for r in records})
    index = {d: i for i, d in enumerate(drills)}
    fig, ax = plt.subplots(figsize=(10, 5.5), dpi=100)
    for n, scenario in enumerate(sorted({r["scenario"] for r in records})):
        mine = [r for r in records if r["scenario"] == scenario]
        colour = f"C{n % 10}"
        ax.plot([index[r["drill"]] for r in mine], [max(r["seconds"], 0.01) for r in mine], marker="o", color=colour,
                label=scenario)
        if mine[-1].get("objective"):
            ax.axhline(mine[-1]["objective"], color=colour, linestyle="--", linewidth=0.8, alpha=0.6)
    ax.set_yscale("log")
    ax.set_xticks(range(len(drills)), drills, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("recovery time, s (log); dashed: objective")
    ax.set_title("tradeops.dr drills: recovery time per scenario")
    ax.legend(fontsize=7, ncol=2, loc="upper left")
    fig.tight_layout()
    # the series drawn, readable back from the PNG's text chunk (the tests check it)
    fig.savefig(path, metadata={"Description": "series: " + ", ".join(sorted({r["scenario"] for r in records}))})
    plt.close(fig)
    return path


def report(steps, drill_id: str, inventory: str, records: list[dict]) -> tuple[Path, Path]:
    base = drills_dir()
    md, png = base / f"drill-{drill_id}.md", base / f"drill-{drill_id}.png"
    chart(records, png)
    lines = [f"# Drill {drill_id}", "", f"Inventory `{inventory}`; {sum(s.ok for s in steps)} of {len(steps)} passed.",
             "", "| scenario | result | recovery s | objective s | injected | expected |", "|---|---|---|---|---|---|"]
    for s in steps:
        lines.append(f"| {s.scenario} | {'PASS' if s.ok else 'FAIL'} | {s.seconds:.2f} | {s.objective or '-'} | "
                     f"{s.injected} | {s.expected} |")
    lines += ["", f"![recovery time per scenario across drills]({png.name})", ""]
    md.write_text("\n".join(lines))
    for p in (md, png):
        p.chmod(0o600)
    return md, png


def history_lines(records: list[dict], last: int = 20) -> list[str]:
    out = [f"{'scenario':<15} {'runs':>4} {'last s':>8} {'median':>8} {'best':>8} {'worst':>8} {'objective':>9} "
           f"{'missed':>6}  trend (last {last})"]
    for scenario in sorted({r["scenario"] for r in records}):
        mine = [r for r in records if r["scenario"] == scenario]
        secs = [r["seconds"] for r in mine]
        tail = secs[-last:]
        lo, hi = min(tail), max(tail)
        spark = "".join(SPARK[0 if hi == lo else int((x - lo) / (hi - lo) * (len(SPARK) - 1))] for x in tail)
        missed = sum(1 for r in mine if not r.get("met", True) or not r.get("passed", True))
        out.append(f"{scenario:<15} {len(mine):>4} {secs[-1]:8.2f} {statistics.median(secs):8.2f} {min(secs):8.2f} "
                   f"{max(secs):8.2f} {mine[-1].get('objective') or '-':>9} {missed:>6}  {spark}")
    return out
