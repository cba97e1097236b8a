"""_exchange.call sorts the errors ccxt raises for Binance USD-M's real hosts (issue 31): ccxt's
per-market tables apply only to https://fapi.binance.com (pointed at the loopback stand-in, -4116
and -1008 arrive as a plain ExchangeError), so the sorting is tested with the exceptions ccxt's own
handle_errors raises for the real URL and the venue's real answers - no request is sent."""

from __future__ import annotations

import json

import ccxt
import pytest

from ansible_collections.tradeops.dr.plugins.module_utils import _exchange

REAL = "https://fapi.binance.com/fapi/v1/order"
LOOPBACK = "http://127.0.0.1:9/fapi/v1/order"


def _raised(url: str, status: int, body: dict) -> Exception:
    ex = ccxt.binanceusdm()
    try:
        ex.handle_errors(status, "reason", url, "POST", {}, json.dumps(body), body, {}, "")
        ex.handle_http_status_code(status, "reason", url, "POST", json.dumps(body))
    except ccxt.BaseError as exc:
        return exc
    raise AssertionError(f"ccxt raised nothing for {status} {body}")


class _Venue:
    """What ex.<method> raises: the error ccxt made of the venue's answer."""

    id = "binanceusdm"

    def __init__(self, exc):
        self.exc, self.calls = exc, 0

    def fetch_positions(self):
        self.calls += 1
        raise self.exc


@pytest.mark.parametrize("status,body,kind,tries", [
    (503, {"code": 1, "msg": "System is under maintenance."}, "maintenance", 1),
    (400, {"code": -4116, "msg": "ClientOrderId is duplicated."}, "bad_request", 1),  # InvalidOrder on the real host
    (503, {"code": -1008, "msg": "Server is currently overloaded with other requests."}, "unreachable", 2),
    (401, {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}, "auth", 1),
    (429, {"code": -1003, "msg": "Too many requests."}, "rate_limited", 2),
])
def test_the_real_hosts_errors_are_sorted_by_what_to_do(status, body, kind, tries, monkeypatch):
    monkeypatch.setattr(_exchange.time, "sleep", lambda _s: None)
    venue = _Venue(_raised(REAL, status, body))
    with pytest.raises(_exchange.ExchangeFailure) as failure:
        _exchange.call(venue, dict(retries=1), "fetch_positions")
    assert failure.value.kind == kind, (type(venue.exc).__name__, str(failure.value))
    assert venue.calls == tries  # only what may pass (busy, rate limited) is tried again


def test_the_loopback_url_gets_the_common_table_only():
    """Why the stand-in cannot show the real sorting: the same answers at loopback are plain ExchangeErrors."""
    for body in ({"code": -4116, "msg": "ClientOrderId is duplicated."},
                 {"code": -1008, "msg": "Server is currently overloaded with other requests."}):
        at_loopback, at_real = _raised(LOOPBACK, 400, body), _raised(REAL, 400, body)
        # nothing more precise than ExchangeError at loopback; a subclass of it, or another branch, on the real host
        assert at_loopback.__class__ is ccxt.ExchangeError, at_loopback
        assert at_real.__class__ is not ccxt.ExchangeError, at_real
