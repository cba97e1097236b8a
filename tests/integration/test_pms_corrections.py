"""Book corrections (runbook 000 scenarios 3 and 4) against the PMS stand-in, whose book and Decision
Journal live in the session's real PostgreSQL: the modules' success, idempotent re-run, resumption and
every refusal in-process (their main() with real arguments, as community collections test modules), and
the role through a playbook once per behaviour a user sees."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from ansible_collections.tradeops.dr.plugins.module_utils import _lock
from ansible_collections.tradeops.dr.plugins.modules import pms_mtm_correction, pms_position_correction
from conftest import artifacts_text, free_port, record, run_module
from tradeops_dr.sandbox import wait_for
from tradeops_dr.standins import pms as pms_standin

TOKEN = "pms-token-" + "s3cr3t"  # the stand-in requires it; it must never be printed


class Pms:
    """The stand-in PMS on its own database of the session's PostgreSQL, and a small client."""

    def __init__(self, pg, tmp_path, name):
        self.pg, self.db = pg, name
        pg.sql("postgres", f'CREATE DATABASE "{name}"')
        (tmp_path / "pw").write_text(pg.password)
        (tmp_path / "token").write_text(TOKEN)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / "pms.log"
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, pms_standin.__file__, "--port", str(self.port), "--pidfile", str(tmp_path / "pms.pid"),
                 "--pg-port", str(pg.port), "--pg-user", pg.user, "--pg-password-file", str(tmp_path / "pw"),
                 "--database", name, "--token-file", str(tmp_path / "token"), "--max-seconds", "900"],
                stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: (self.call("GET", "/health")[0] == 200, self.log.read_text()[-300:]), 20,
                     "the PMS stand-in's /health")
        except Exception:
            self.stop()
            raise

    def call(self, method, path, body=None, token=TOKEN):
        req = urllib.request.Request(self.url + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")
        except OSError:
            return None, {}

    def open(self, instrument, size, direction, entry, fees=0.0):
        status, pos = self.call("POST", "/api/v1/pms/book/positions/open",
                                dict(instrument=instrument, size=size, direction=direction, entry_price=entry))
        assert status == 201, pos
        if fees:
            self.pg.sql(self.db, "UPDATE pms_positions SET fees = %s WHERE id = %s", (fees, pos["id"]))
        return pos

    def feed(self, instrument, price):
        self.pg.sql(self.db, "INSERT INTO pms_prices (instrument, price, source) VALUES (%s, %s, 'feed')",
                    (instrument, price))

    def positions(self):
        return {p["id"]: p for p in self.call("GET", "/api/v1/pms/book/positions")[1]["positions"]}

    def journal(self):
        return self.call("GET", "/api/v1/pms/journal")[1]["entries"]

    def summary(self):
        return self.call("GET", "/api/v1/pms/book/summary")[1]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def pms(pg, tmp_path, request):
    server = Pms(pg, tmp_path, "pms_" + request.node.name[-40:].lower().replace("[", "_").replace("]", "")
                 .replace("-", "_"))
    # a book: a long BTC position booked 10x its size, an ETH short, both marked by the feed
    server.wrong = server.open("BTC-PERP", 10, "LONG", 50000)
    server.eth = server.open("ETH-PERP", 20, "SHORT", 3000)
    server.feed("BTC-PERP", 51000)
    server.feed("ETH-PERP", 2950)
    assert server.call("POST", "/api/v1/pms/book/mtm", {})[0] == 200
    yield server
    server.stop()


def correction(pms, **kw):
    return dict(dict(url=pms.url, token=TOKEN, incident="INC-77", actor="ops", position_id=str(pms.wrong["id"]),
                     instrument="BTC-PERP", size=1, direction="LONG", reason="size booked 10x",
                     max_notional=1e6), **kw)


def test_the_stand_in_answers_as_the_pms_does(pms):
    """The stand-in's errors are the PMS's: 401 without the token, 404, 409 on a second close, 422 on a bad body."""
    assert pms.call("GET", "/api/v1/pms/book/positions", token="wrong")[0] == 401
    assert pms.call("GET", "/api/v1/pms/book/positions/999999")[0] == 404
    assert pms.call("POST", "/api/v1/pms/book/positions/open", {"instrument": "X", "size": -1,
                                                                "direction": "LONG", "entry_price": 1})[0] == 422
    pos = pms.open("SOL-PERP", 5, "LONG", 100, fees=2.5)
    status, closed = pms.call("POST", f"/api/v1/pms/book/positions/{pos['id']}/close", {"exit_price": 110})
    assert status == 200 and closed["status"] == "CLOSED" and closed["realized_pnl"] == pytest.approx(47.5)
    assert pms.call("POST", f"/api/v1/pms/book/positions/{pos['id']}/close", {"exit_price": 110})[0] == 409
    assert pms.positions()[pms.eth["id"]]["unrealized_pnl"] == pytest.approx(-20 * (2950 - 3000))


def test_a_wrong_position_is_corrected_by_compensating_entries_once(pms, capsys):
    before = pms.summary()
    result, failed = run_module(pms_position_correction, correction(pms), capsys)
    assert not failed, result["msg"] if "msg" in result else result
    assert result["changed"] and result["state"] == "corrected"
    book = pms.positions()
    old, new = book[pms.wrong["id"]], book[int(result["new_position"]["id"])]
    # the runbook's checklist: old CLOSED at entry with realised P&L 0, new OPEN as asked, the journal trail
    assert (old["status"], old["exit_price"], old["realized_pnl"]) == ("CLOSED", 50000, 0)
    assert (new["status"], new["instrument"], new["size"], new["direction"], new["entry_price"]) == \
        ("OPEN", "BTC-PERP", 1, "LONG", 50000)
    entries = [e for e in pms.journal() if e["entry_type"] == "correction"]
    assert len(entries) == 1 and entries[0]["related_position_id"] == pms.wrong["id"]
    assert f"opened as {new['id']}" in entries[0]["content"] and entries[0]["metadata"]["new_position_id"] == str(new["id"])
    assert pms.summary()["realized_pnl"] == before["realized_pnl"]  # the correction booked no P&L
    assert len(book) == 3  # nothing deleted: both positions of BTC remain, the ETH one untouched
    # a second run finds the correction in the journal and changes nothing
    again, failed = run_module(pms_position_correction, correction(pms), capsys)
    assert not failed and not again["changed"] and again["state"] == "already_corrected"
    assert len(pms.positions()) == 3 and len(pms.journal()) == 1
    assert TOKEN not in json.dumps(result) + json.dumps(again)


def test_an_interrupted_correction_resumes_without_a_second_position(pms, capsys):
    # the first run closed the position (its mark in the notes), then the PMS went away before the open
    tag = pms_position_correction.tag_of(pms.wrong["id"])
    status, closed = pms.call("POST", f"/api/v1/pms/book/positions/{pms.wrong['id']}/close",
                              {"exit_price": 50000, "notes": "CORRECTION: Closing incorrect position entry " + tag})
    assert status == 200 and closed["status"] == "CLOSED"
    result, failed = run_module(pms_position_correction, correction(pms), capsys)
    assert not failed and result["changed"], result.get("msg")
    assert sum(1 for p in pms.positions().values() if p["instrument"] == "BTC-PERP" and p["status"] == "OPEN") == 1
    assert len(pms.journal()) == 1


@pytest.mark.parametrize("change, words", [
    (dict(position_id="999999"), "position 999999 is unknown to the PMS"),
    (dict(size=10), "already recorded as BTC-PERP LONG 10 @ 50000"),
    (dict(size=1000), "needs the approval code of its plan"),
    (dict(size=1000, approval="0000-0000-0000"), "is not that plan's"),
])
def test_refusals_change_nothing(pms, capsys, change, words):
    before = (pms.positions(), pms.journal())
    result, failed = run_module(pms_position_correction, correction(pms, **change), capsys)
    assert failed and words in result["msg"] and "nothing was changed" in result["msg"]
    assert (pms.positions(), pms.journal()) == before


def test_a_closed_position_and_a_close_that_books_fees_are_refused(pms, capsys):
    closed = pms.open("SOL-PERP", 5, "LONG", 100)
    pms.call("POST", f"/api/v1/pms/book/positions/{closed['id']}/close", {"exit_price": 100})
    result, failed = run_module(pms_position_correction, correction(pms, position_id=str(closed["id"])), capsys)
    assert failed and "is already CLOSED" in result["msg"]
    charged = pms.open("ADA-PERP", 1000, "LONG", 0.5, fees=3.0)
    before = pms.positions()
    result, failed = run_module(pms_position_correction, correction(
        pms, position_id=str(charged["id"]), instrument="ADA-PERP", size=100), capsys)
    assert failed and "would book -3 of realised P&L" in result["msg"] and "total P&L" in result["msg"]
    assert pms.positions() == before


def test_an_approval_names_its_plan_and_is_not_replayed(pms, capsys):
    planned, failed = run_module(pms_position_correction, correction(pms, size=1000), capsys)
    assert failed and planned["needs_approval"]
    code = planned["approval_code"]
    done, failed = run_module(pms_position_correction, correction(pms, size=1000, approval=code), capsys)
    assert not failed and done["changed"]
    assert pms.journal()[0]["metadata"]["approval_code"] == code
    # the same code for another position's correction: its plan has another code, and this one is spent
    other = pms.open("BTC-PERP", 3000, "LONG", 50000)
    result, failed = run_module(pms_position_correction, correction(
        pms, position_id=str(other["id"]), size=2000, approval=code), capsys)
    assert failed and "is not that plan's" in result["msg"]


def test_check_mode_plans_and_changes_nothing(pms, capsys):
    before = (pms.positions(), pms.journal())
    result, failed = run_module(pms_position_correction, dict(correction(pms), _ansible_check_mode=True), capsys)
    assert not failed and result["state"] == "planned" and not result["changed"]
    assert result["plan"] == ["close position %s (BTC-PERP LONG 10 @ 50000) at its entry price 50000" % pms.wrong["id"],
                              "open BTC-PERP LONG 1 @ 50000"]
    assert (pms.positions(), pms.journal()) == before


def mtm(pms, **kw):
    return dict(dict(url=pms.url, token=TOKEN, incident="INC-78", actor="ops", prices={"ETH-PERP": 2990.0},
                     source="Bloomberg", reference_prices={"ETH-PERP": 2991.0}, reference_source="exchange"), **kw)


def test_a_wrong_mark_is_corrected_journaled_and_verified_once(pms, capsys):
    second = pms.open("ETH-PERP", 5, "LONG", 2800)
    pms.call("POST", "/api/v1/pms/book/mtm", {})
    result, failed = run_module(pms_mtm_correction, mtm(pms), capsys)
    assert not failed, result.get("msg")
    assert result["changed"] and result["plan"] == ["mark ETH-PERP at 2990 (was 2950, 2 open position(s))"]
    book = pms.positions()
    assert book[pms.eth["id"]]["unrealized_pnl"] == pytest.approx(-20 * (2990 - 3000))
    assert book[second["id"]]["unrealized_pnl"] == pytest.approx(5 * (2990 - 2800))
    assert book[pms.wrong["id"]]["current_price"] == 51000  # another instrument's mark is left alone
    (entry,) = pms.journal()
    assert entry["content"].startswith("MTM corrected for ETH-PERP. Previous price: 2950. Correct price: 2990. "
                                       "Source: Bloomberg.")
    again, failed = run_module(pms_mtm_correction, mtm(pms), capsys)
    assert not failed and not again["changed"] and again["state"] == "already_corrected"
    assert len(pms.journal()) == 1


@pytest.mark.parametrize("change, words", [
    (dict(instruments=["ETH-PERP", "BTC-PERP"]), "no price given for BTC-PERP"),
    (dict(prices={"DOGE-PERP": 0.1}, reference_prices={}), "no open position in DOGE-PERP"),
    (dict(prices={"ETH-PERP": 29900.0}), "further than max_deviation 0.02 from exchange"),
])
def test_mtm_refusals_change_nothing(pms, capsys, change, words):
    before = (pms.positions(), pms.journal())
    result, failed = run_module(pms_mtm_correction, mtm(pms, **change), capsys)
    assert failed and words in result["msg"] and "nothing was changed" in result["msg"]
    assert (pms.positions(), pms.journal()) == before


def test_an_approved_deviating_price_is_marked_with_its_approval(pms, capsys):
    planned, failed = run_module(pms_mtm_correction, mtm(pms, prices={"ETH-PERP": 3100.0}), capsys)
    assert failed and planned["needs_approval"] == ["ETH-PERP"]
    result, failed = run_module(pms_mtm_correction, mtm(pms, prices={"ETH-PERP": 3100.0},
                                                        approval=planned["approval_code"]), capsys)
    assert not failed and result["changed"]
    assert pms.journal()[0]["metadata"]["approval_code"] == planned["approval_code"]
    # the feed marks it back; the same plan again has the same code - which is spent: not accepted twice
    pms.feed("ETH-PERP", 2950)
    assert pms.call("POST", "/api/v1/pms/book/mtm", {})[0] == 200
    again, failed = run_module(pms_mtm_correction, mtm(pms, prices={"ETH-PERP": 3100.0},
                                                       approval=planned["approval_code"]), capsys)
    assert again["approval_code"] == planned["approval_code"]
    assert failed and "already spent" in again["msg"] and len(pms.journal()) == 1


def test_an_unreachable_pms_is_said_plainly(capsys):
    result, failed = run_module(pms_position_correction, dict(
        url=f"http://127.0.0.1:{free_port()}", token=TOKEN, incident="INC-1", actor="ops", position_id="1",
        instrument="X", size=1, direction="LONG"), capsys)
    assert failed and "did not answer GET /api/v1/pms/book/positions/1" in result["msg"]
    assert TOKEN not in result["msg"]


def test_the_playbook_plans_then_applies_an_approved_correction_from_a_ticket_file(pms, run, tmp_path):
    """What a user runs: --check prints the plan and its code, the run with the code corrects, the MTM from a
    ticket file; the record is exported, the token appears nowhere in what ansible-runner kept."""
    ticket = tmp_path / "ticket.yml"
    ticket.write_text(f"position: {{position_id: '{pms.wrong['id']}', instrument: BTC-PERP, size: 1, direction: long,"
                      " reason: size booked 10x}\n")
    hostvars = dict(book_correction_pms=dict(url=pms.url, token=TOKEN), book_correction_action="position",
                    book_correction_file=str(ticket), book_correction_incident="INC-90", book_correction_actor="ops",
                    book_correction_max_notional=100, dr_lock_dir=str(tmp_path / "locks"))
    planned = run("book_correction.yml", hostvars, check=True, group="pms_servers")
    assert planned.status == "successful", planned.stdout
    rec = record(planned, "book_correction")
    assert rec["state"] == "planned" and rec["approval_code"] in planned.stdout and len(pms.journal()) == 0
    refused = run("book_correction.yml", hostvars, group="pms_servers")
    assert refused.status == "failed" and "needs the approval code of its plan" in refused.stdout
    done = run("book_correction.yml", dict(hostvars, book_correction_approval=rec["approval_code"]), group="pms_servers")
    assert done.status == "successful", done.stdout
    rec = record(done, "book_correction")
    assert rec["state"] == "corrected" and rec["new_position"]["status"] == "OPEN"
    assert rec["pnl"]["after"]["realized"] == rec["pnl"]["before"]["realized"]
    (tmp_path / "mtm.json").write_text(json.dumps({"prices": {"ETH-PERP": 2990}, "source": "broker statement",
                                                   "reference_prices": {"ETH-PERP": 2989.5}}))
    marked = run("book_correction.yml", dict(hostvars, book_correction_action="mtm",
                                             book_correction_file=str(tmp_path / "mtm.json")), group="pms_servers")
    assert marked.status == "successful", marked.stdout
    assert record(marked, "book_correction")["positions"][0]["unrealized_pnl"] == pytest.approx(-20 * (2990 - 3000))
    for result in (planned, refused, done, marked):
        assert TOKEN not in artifacts_text(result)
    # the book changed under the PMS host's lock, given back each time (the lock's history)
    history = [json.loads(line)["event"] for line in (tmp_path / "locks" / "history.jsonl").read_text().splitlines()]
    assert history.count("taken") == history.count("released") >= 3


def test_the_exchange_is_the_second_source_of_an_mtm_correction(pms, run, exchange, tmp_path):
    """Issue 29: a price is checked against the exchange's last traded price, read through the collection's ccxt
    layer (exchange_info gather=prices; the exchange stand-in marks ETHUSDT at 3000): 3100 is 3.3 % away - refused
    without approval, nothing journaled; 2990 is marked and the journal names the exchange's price."""
    hostvars = dict(book_correction_pms=dict(url=pms.url, token=TOKEN), book_correction_action="mtm",
                    book_correction_incident="INC-91", book_correction_actor="ops", book_correction_source="broker",
                    book_correction_reference_exchange=dict(exchange="binanceusdm", api_base=exchange.base,
                                                            request_timeout=5, retries=1),
                    book_correction_reference_symbols={"ETH-PERP": "ETHUSDT"}, dr_lock_dir=str(tmp_path / "locks"))
    far = run("book_correction.yml", dict(hostvars, book_correction_prices={"ETH-PERP": 3100}), group="pms_servers")
    assert far.status == "failed", far.stdout
    assert "further than max_deviation 0.02 from exchange binanceusdm last price" in far.stdout, far.stdout[-3000:]
    assert pms.journal() == []
    near = run("book_correction.yml", dict(hostvars, book_correction_prices={"ETH-PERP": 2990}), group="pms_servers")
    assert near.status == "successful", near.stdout[-3000:]
    (entry,) = pms.journal()
    assert "Checked against exchange binanceusdm last price: 3000." in entry["content"], entry["content"]
    assert any(r[1] in ("/fapi/v1/ticker/price", "/fapi/v2/ticker/price") for r in exchange.state()["requests"])


def test_a_correction_waits_for_the_lock_another_run_holds(pms, run, tmp_path):
    """A full recovery (or another correction) holds the PMS host's lock: the correction is refused naming the
    holder, and nothing in the book changes."""
    locks = tmp_path / "locks"
    held = _lock.acquire(str(locks), "host-under-test", "other-run-token",
                         {"user": "alice", "playbook": "full_recovery.yml", "incident": "INC-9"}, lease=300)
    assert held["acquired"]
    before = (pms.positions(), pms.journal())
    refused = run("book_correction.yml", dict(
        book_correction_pms=dict(url=pms.url, token=TOKEN), book_correction_action="position",
        book_correction_position=dict(position_id=str(pms.wrong["id"]), instrument="BTC-PERP", size=1, direction="LONG"),
        book_correction_incident="INC-91", book_correction_actor="ops", book_correction_max_notional=1e9,
        dr_lock_dir=str(locks)), group="pms_servers")
    assert refused.status == "failed" and "REFUSED" in refused.stdout and "alice" in refused.stdout, refused.stdout[-2000:]
    assert (pms.positions(), pms.journal()) == before
    assert _lock.release(str(locks), "host-under-test", "other-run-token")


def test_the_playbook_refuses_a_correction_without_its_incident_and_an_unreachable_pms_is_broken(pms, run):
    refused = run("book_correction.yml", dict(book_correction_pms=dict(url=pms.url, token=TOKEN),
                                              book_correction_action="mtm", book_correction_prices={"ETH-PERP": 1}),
                  group="pms_servers")
    assert refused.status == "failed" and "names its incident" in refused.stdout and len(pms.journal()) == 0
    pms.stop()
    down = run("book_correction.yml", dict(book_correction_pms=dict(url=pms.url)), group="pms_servers")
    assert down.status == "successful" and "PMS broken: GET /health" in down.stdout


@pytest.mark.parametrize("module, args", [
    (pms_position_correction, dict(position_id="1", instrument="X", size=1, direction="LONG", actor=" ")),
    (pms_mtm_correction, dict(prices={"X": 1.0}, source="broker", actor=" ")),
])
def test_a_correction_without_its_actor_is_refused_before_anything_is_read(module, args, capsys):
    # nothing listens there: the refusal comes before any request
    result, failed = run_module(module, dict(url=f"http://127.0.0.1:{free_port()}", incident="INC-1", **args), capsys)
    assert failed and result["msg"].startswith("actor is empty") and "nothing was read" in result["msg"]
