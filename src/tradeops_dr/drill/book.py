"""Drills of the book (runbook 000 scenarios 3 and 4) on the sandbox's PMS stand-in: a position booked
with the wrong size, corrected by compensating entries after its plan was approved; a wrong
mark-to-market corrected with a manual price checked against a second source. Each ends with a
second run that changes nothing."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

from ..api import run_playbook
from ..sandbox import Sandbox
from .steps import DrillStep, Steps


class _PmsClient:
    """The drill's own view of the PMS (what an ops engineer reads in the Position Book)."""

    def __init__(self, state: dict):
        self.url = state["pms"]["url"]
        self.token = Path(state["pms"]["token_file"]).read_text().strip()

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        req = urllib.request.Request(self.url + path, method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {self.token}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def positions(self) -> dict:
        return {p["id"]: p for p in self.call("GET", "/api/v1/pms/book/positions")["positions"]}

    def journal(self) -> list:
        return self.call("GET", "/api/v1/pms/journal")["entries"]


def pms_drill(sandbox: Sandbox, inventory: str = "local", on_step=None) -> list[DrillStep]:
    """The two book corrections through playbooks/book_correction.yml, as an ops engineer runs them: the
    plan first (--check prints its approval code), then the approved run, then a second run."""
    state = sandbox.up()
    steps = Steps(on_step)
    if not state.get("pms"):
        steps.append(DrillStep("position correction", "-", "the sandbox runs the PMS stand-in", False, 0.0,
                               ["this sandbox has no PMS part: tradeops-dr sandbox up adds it"]))
        return steps
    env = {"TRADEOPS_DR_SANDBOX": str(sandbox.state_dir)}
    pms = _PmsClient(state)
    incident = time.strftime("DRILL-%Y%m%d%H%M%S")

    def play(check=False, **extra):
        return run_playbook("book_correction.yml", inventory=inventory, envvars=env, check=check,
                            extravars=dict(book_correction_incident=incident, book_correction_actor="drill", **extra))

    def record(res) -> dict:
        return next(iter((res.data.get("book_correction") or {}).values()), {})

    # 1. a fill of 2 BTC booked as 20: closed at entry, the right one opened, journaled - once approved
    opened = dict(instrument="BTC-PERP", size=20, direction="LONG", entry_price=50000, notes="order capture")
    wrong = pms.call("POST", "/api/v1/pms/book/positions/open", opened)
    position = dict(position_id=str(wrong["id"]), instrument="BTC-PERP", size=2, direction="LONG",
                    reason="fill of 2 booked as 20")
    realized_before = pms.call("GET", "/api/v1/pms/book/summary")["realized_pnl"]
    t0 = time.monotonic()
    planned = play(check=True, book_correction_action="position", book_correction_position=position)
    code = record(planned).get("approval_code")
    done = play(book_correction_action="position", book_correction_position=position, book_correction_approval=code)
    secs = time.monotonic() - t0
    again = play(book_correction_action="position", book_correction_position=position, book_correction_approval=code)
    rec = record(done)
    book = pms.positions()
    new = book.get((rec.get("new_position") or {}).get("id"))
    trail = [e for e in pms.journal() if e.get("related_position_id") == wrong["id"]]
    ok = (planned.ok and done.ok and again.ok and again.changed == 0 and book[wrong["id"]]["status"] == "CLOSED"
          and book[wrong["id"]]["realized_pnl"] == 0 and new is not None and new["status"] == "OPEN"
          and new["size"] == 2 and len(trail) == 1
          and pms.call("GET", "/api/v1/pms/book/summary")["realized_pnl"] == realized_before)
    steps.append(DrillStep("position correction", f"position {wrong['id']}: a fill of 2 BTC-PERP booked as 20",
                           "plan approved by its code; old CLOSED at entry (P&L 0), new OPEN as 2, one journal entry, "
                           "realised P&L unchanged; a 2nd run changes nothing", ok, secs,
                           [f"approval code {code}; old {book[wrong['id']]['status']} realised "
                            f"{book[wrong['id']]['realized_pnl']}; new {new and new['id']} {new and new['status']}",
                            f"journal: {trail[-1]['content'] if trail else 'nothing'}",
                            f"second run changed={again.changed}",
                            *[f.msg for f in planned.failures + done.failures + again.failures]]))

    # 2. the feed marks ETH at a tenth of its price: re-marked at the broker's price, checked against a second source
    opened = dict(instrument="ETH-PERP", size=10, direction="SHORT", entry_price=3000, notes="drill")
    eth = pms.call("POST", "/api/v1/pms/book/positions/open", opened)
    pms.call("POST", "/api/v1/pms/book/mtm", {"manual_prices": {"ETH-PERP": 295.0}})
    prices = {"ETH-PERP": 2950.0}
    t0 = time.monotonic()
    fixed = play(book_correction_action="mtm", book_correction_prices=prices, book_correction_source="broker statement",
                 book_correction_reference_prices={"ETH-PERP": 2951.5})
    secs = time.monotonic() - t0
    again = play(book_correction_action="mtm", book_correction_prices=prices, book_correction_source="broker statement",
                 book_correction_reference_prices={"ETH-PERP": 2951.5})
    after = pms.positions()[eth["id"]]
    expected = -10 * (2950.0 - 3000.0)
    ok = fixed.ok and again.ok and again.changed == 0 and after["current_price"] == 2950.0 \
        and abs(after["unrealized_pnl"] - expected) < 0.01
    steps.append(DrillStep("mtm correction", "ETH-PERP marked at 295 (a tenth of its price)",
                           "re-marked at 2950 (within 2% of the second source), journaled; unrealised P&L = size x "
                           "(price - entry); a 2nd run changes nothing", ok, secs,
                           [f"position {eth['id']}: marked {after['current_price']}, unrealised "
                            f"{after['unrealized_pnl']} (expected {expected})", f"second run changed={again.changed}",
                            *[f.msg for f in fixed.failures + again.failures]]))
    return steps
