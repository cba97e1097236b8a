"""The collection's own Prometheus exporter: what only tradeops.dr knows, read at each scrape.

The real exporters cover the servers (Debian's prometheus-redis-exporter, -postgres-exporter,
-node-exporter; QuestDB's own /metrics). This one exports what lives in the collection's files and
keys, through prometheus-client (a custom collector: nothing is cached between scrapes):

  tradeops_dr_source_up{source}                       1 when the source below could be read
  tradeops_dr_kill_switch_engaged                     the Redis flag, or the local flag file (fail closed)
  tradeops_dr_risk_value{measure}                     drawdown, var, var_limit, es, es_limit, pnl_day_ratio
                                                      - as the risk engine writes them in Redis
  tradeops_dr_backup_newest_verified_timestamp_seconds{database}  0 when none is verified
  tradeops_dr_backup_max_age_seconds{database}
  tradeops_dr_backup_last_verification_ok{database}   0 when the newest backup failed its verification
  tradeops_dr_questdb_wal_table_suspended{table}
  tradeops_dr_questdb_wal_pending_transactions{table}
  tradeops_dr_lock_since_timestamp_seconds{lock}      a recovery lock held now (its file exists)
  tradeops_dr_lock_expires_timestamp_seconds{lock}
  tradeops_dr_drill_last_timestamp_seconds, tradeops_dr_drill_last_success, tradeops_dr_drill_schedule_seconds
  tradeops_dr_heartbeat_timestamp_seconds{strategy}, tradeops_dr_price_timestamp_seconds{strategy},
  tradeops_dr_strategy_connected{strategy}, tradeops_dr_heartbeat_max_age_seconds{strategy},
  tradeops_dr_price_max_age_seconds{strategy}
  tradeops_dr_health_ok{component}                    an application's health URL answered 2xx

Configuration: a YAML file (extensions/monitoring/exporter.example.yml shows every key); a part left
out is not exported. Secrets are read from files, never from the configuration itself.

    tradeops-dr exporter --config /etc/tradeops-dr/exporter.yml [--listen 127.0.0.1:9870] [--once]
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path

import yaml

from .errors import BadInput
from .paths import module_utils

RISK_MEASURES = ("drawdown", "var", "var_limit", "es", "es_limit", "pnl_day_ratio")
DEFAULT_LISTEN = "127.0.0.1:9870"
PARTS = ("redis", "kill_switch", "risk", "backups", "questdb", "locks", "drills", "strategies", "health")


def load_config(path: str | Path) -> dict:
    """The exporter's configuration, refused with the key at fault (bad input, before serving)."""
    try:
        conf = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as exc:
        raise BadInput(f"the exporter's configuration {path} cannot be read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise BadInput(f"the exporter's configuration {path} is not YAML: {exc}") from exc
    if not isinstance(conf, dict):
        raise BadInput(f"the exporter's configuration {path} must be a mapping of {', '.join(PARTS)}")
    unknown = sorted(set(conf) - set(PARTS) - {"listen"})
    if unknown:
        raise BadInput(f"the exporter's configuration {path} has unknown keys {', '.join(unknown)} "
                       f"(known: listen, {', '.join(PARTS)})")
    if ("kill_switch" in conf or "risk" in conf) and "redis" not in conf and not (conf.get("kill_switch") or {}).get(
            "flag_file"):
        raise BadInput("kill_switch and risk are read from Redis: give redis (host, port, password_file)")
    extra = sorted(set(conf.get("risk") or {}) - set(RISK_MEASURES))
    if extra:
        raise BadInput(f"risk: unknown measures {', '.join(extra)} (known: {', '.join(RISK_MEASURES)})")
    return conf


def _read_secret(path: str | None) -> str | None:
    if not path:
        return None
    with open(path, encoding="utf-8") as fh:
        return fh.read().strip()


class Collector:
    """prometheus-client's custom collector: collect() reads every source at scrape time."""

    def __init__(self, conf: dict):
        self.conf = conf

    def describe(self):  # no metric is registered twice; collect() is not called at registration
        return []

    # ---- sources ----------------------------------------------------------------------------
    def _redis(self):
        """A client proven by PING, through the collection's own connect (no retries: redis-py's default
        retries of a refused connection made a scrape outlast Prometheus's timeout while Redis was down,
        and the whole exporter looked down exactly when it had something to say)."""
        _redis = module_utils("_redis")
        r = self.conf["redis"]
        return _redis.connect(dict(login_host=r.get("host", "127.0.0.1"), login_port=int(r.get("port", 6379)),
                                   db=int(r.get("db", 0)), login_password=_read_secret(r.get("password_file")),
                                   connect_timeout=float(r.get("timeout", 1))))

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        up = GaugeMetricFamily("tradeops_dr_source_up", "1 when the exporter could read this source", labels=["source"])
        families = [up]
        client = None
        if "redis" in self.conf:
            try:
                client = self._redis()
                up.add_metric(["redis"], 1)
            except Exception:  # noqa: BLE001 - any failure of the source is its metric, never a failed scrape
                client = None
                up.add_metric(["redis"], 0)
        if "kill_switch" in self.conf:
            families.append(self._kill_switch(client))
        if "risk" in self.conf and client is not None:
            families.append(self._risk(client, up))
        if "backups" in self.conf:
            families += self._backups(up)
        if "questdb" in self.conf:
            families += self._questdb(up)
        if "locks" in self.conf:
            families += self._locks(up)
        if "drills" in self.conf:
            families += self._drills(up)
        if "strategies" in self.conf:
            families += self._strategies(up)
        if "health" in self.conf:
            families.append(self._health())
        return families

    def _kill_switch(self, client):
        from prometheus_client.core import GaugeMetricFamily

        ks = self.conf.get("kill_switch") or {}
        fam = GaugeMetricFamily("tradeops_dr_kill_switch_engaged",
                                "1 when the kill switch is engaged (the Redis flag or the local flag file)")
        flag = os.path.exists(ks.get("flag_file", "/var/lib/tradeops-dr/kill_switch.flag"))
        in_redis = None
        if client is not None:
            try:
                in_redis = client.hget(ks.get("key", "policy:kill_switch"), "enabled") == "true"
            except Exception:  # noqa: BLE001 - the source's failure is a metric, not a failed scrape
                in_redis = None
        if flag or in_redis:
            fam.add_metric([], 1)
        elif in_redis is False:
            fam.add_metric([], 0)
        # else: Redis unreadable and no flag file - unknown, so no sample (TradeopsDrRedisDown says why)
        return fam

    def _risk(self, client, up):
        from prometheus_client.core import GaugeMetricFamily

        fam = GaugeMetricFamily("tradeops_dr_risk_value", "a risk measure as the risk engine wrote it in Redis",
                                labels=["measure"])
        ok = 1
        for measure, key in sorted((self.conf.get("risk") or {}).items()):
            try:
                value = client.get(key)
                if value is not None:
                    fam.add_metric([measure], float(value))
            except Exception:  # noqa: BLE001 - not a number, or Redis went away: the source is down
                ok = 0
        up.add_metric(["risk"], ok)
        return fam

    def _backups(self, up):
        from prometheus_client.core import GaugeMetricFamily

        _backup = module_utils("_backup")
        conf = self.conf["backups"]
        newest = GaugeMetricFamily("tradeops_dr_backup_newest_verified_timestamp_seconds",
                                   "when the newest verified backup was made (0: none is verified)", labels=["database"])
        limit = GaugeMetricFamily("tradeops_dr_backup_max_age_seconds", "the age a verified backup must stay under",
                                  labels=["database"])
        ok = GaugeMetricFamily("tradeops_dr_backup_last_verification_ok",
                               "0 when the newest backup of the database failed its verification", labels=["database"])
        try:
            entries = _backup.catalog(conf.get("root", "/var/backups/tradeops-dr/postgres"))
            up.add_metric(["backups"], 1)
        except OSError:
            up.add_metric(["backups"], 0)
            return [newest, limit, ok]
        for db in conf.get("databases") or ["trading"]:
            verified = _backup.newest(entries, database=db, status="verified")
            last = _backup.newest(entries, database=db)
            newest.add_metric([db], verified["created_at"] if verified else 0)
            limit.add_metric([db], float(conf.get("max_age_hours", 26)) * 3600)
            ok.add_metric([db], 0 if last and last["status"] == "failed" else 1)
        return [newest, limit, ok]

    def _questdb(self, up):
        from prometheus_client.core import GaugeMetricFamily

        suspended = GaugeMetricFamily("tradeops_dr_questdb_wal_table_suspended", "1 when a WAL table is suspended",
                                      labels=["table"])
        pending = GaugeMetricFamily("tradeops_dr_questdb_wal_pending_transactions",
                                    "WAL transactions written but not yet applied", labels=["table"])
        conf = self.conf["questdb"]
        _questdb = module_utils("_questdb")
        url = conf.get("url", "http://127.0.0.1:9000")
        client = _questdb.QuestDBClient(dict(url=url, health_url=url, request_timeout=float(conf.get("timeout", 2))))
        try:
            for t in client.wal_tables():
                suspended.add_metric([t["name"]], 1 if t.get("suspended") else 0)
                pending.add_metric([t["name"]], max(0, int(t.get("sequencerTxn") or 0) - int(t.get("writerTxn") or 0)))
            up.add_metric(["questdb"], 1)
        except (_questdb.QuestDBUnreachable, _questdb.QuestDBError, ValueError):
            up.add_metric(["questdb"], 0)
        return [suspended, pending]

    def _locks(self, up):
        from prometheus_client.core import GaugeMetricFamily

        _manifest = module_utils("_manifest")
        since = GaugeMetricFamily("tradeops_dr_lock_since_timestamp_seconds", "when the held recovery lock was taken",
                                  labels=["lock"])
        expires = GaugeMetricFamily("tradeops_dr_lock_expires_timestamp_seconds",
                                    "when the held recovery lock's lease runs out", labels=["lock"])
        folder = Path(self.conf["locks"].get("dir", "/var/lib/tradeops-dr/locks"))
        ok = 1
        for path in sorted(folder.glob("*.lock.json")) if folder.is_dir() else []:
            data, _why = _manifest.read_json(str(path))
            name = path.name[:-len(".lock.json")]
            if not isinstance(data, dict):
                ok = 0
                continue
            try:
                since.add_metric([name], _manifest.parse_utc_iso(data["since"]) if data.get("since") else 0)
            except ValueError:
                since.add_metric([name], 0)
            expires.add_metric([name], float(data.get("expires") or 0))
        up.add_metric(["locks"], ok)
        return [since, expires]

    def _drills(self, up):
        from prometheus_client.core import GaugeMetricFamily

        from . import drill_history

        _manifest = module_utils("_manifest")

        conf = self.conf["drills"]
        last_at = GaugeMetricFamily("tradeops_dr_drill_last_timestamp_seconds", "when the last drill ran (0: never)")
        success = GaugeMetricFamily("tradeops_dr_drill_last_success", "1 when every step of the last drill passed")
        schedule = GaugeMetricFamily("tradeops_dr_drill_schedule_seconds", "how often a drill must run")
        schedule.add_metric([], float(conf.get("schedule_days", 30)) * 86400)
        try:
            records = drill_history.load(Path(conf["history"]) if conf.get("history") else None)
            up.add_metric(["drills"], 1)
        except (OSError, ValueError):
            up.add_metric(["drills"], 0)
            return [last_at, success, schedule]
        if records:
            last = max(r["drill"] for r in records)
            mine = [r for r in records if r["drill"] == last]
            at = max(_manifest.parse_utc_iso(r["at"]) for r in mine)
            last_at.add_metric([], at)
            success.add_metric([], 1 if all(r.get("passed") for r in mine) else 0)
        else:
            last_at.add_metric([], 0)
        return [last_at, success, schedule]

    def _strategies(self, up):
        from prometheus_client.core import GaugeMetricFamily

        beat = GaugeMetricFamily("tradeops_dr_heartbeat_timestamp_seconds", "the strategy's last heartbeat",
                                 labels=["strategy"])
        price = GaugeMetricFamily("tradeops_dr_price_timestamp_seconds", "the time of the last price the strategy saw",
                                  labels=["strategy"])
        connected = GaugeMetricFamily("tradeops_dr_strategy_connected", "1 when the strategy says it is connected",
                                      labels=["strategy"])
        beat_max = GaugeMetricFamily("tradeops_dr_heartbeat_max_age_seconds", "the heartbeat's age limit",
                                     labels=["strategy"])
        price_max = GaugeMetricFamily("tradeops_dr_price_max_age_seconds", "the price's age limit", labels=["strategy"])
        ok = 1
        for name, s in sorted((self.conf.get("strategies") or {}).items()):
            beat_max.add_metric([name], float(s.get("heartbeat_max_age", 30)))
            price_max.add_metric([name], float(s.get("price_max_age", 60)))
            try:
                data = json.loads(Path(s["heartbeat_file"]).read_text())
            except (OSError, ValueError, KeyError):
                ok = 0
                beat.add_metric([name], 0)  # no heartbeat at all is as stale as it gets
                continue
            beat.add_metric([name], float(data.get("ts") or 0))
            if data.get("price_ts") is not None:
                price.add_metric([name], float(data["price_ts"]))
            if data.get("connected") is not None:
                connected.add_metric([name], 1 if data["connected"] else 0)
        up.add_metric(["strategies"], ok)
        return [beat, price, connected, beat_max, price_max]

    def _health(self):
        from prometheus_client.core import GaugeMetricFamily

        fam = GaugeMetricFamily("tradeops_dr_health_ok", "1 when the component's health URL answered 2xx",
                                labels=["component"])
        for component, h in sorted((self.conf.get("health") or {}).items()):
            try:
                with urllib.request.urlopen(h["url"], timeout=float(h.get("timeout", 2))) as resp:
                    fam.add_metric([component], 1 if 200 <= resp.status < 300 else 0)
            except (OSError, urllib.error.URLError, ValueError):
                fam.add_metric([component], 0)
        return fam


def registry(conf: dict):
    from prometheus_client import CollectorRegistry

    reg = CollectorRegistry(auto_describe=False)
    reg.register(Collector(conf))
    return reg


def render(conf: dict) -> str:
    """One scrape's text (what `--once` prints)."""
    from prometheus_client import generate_latest

    return generate_latest(registry(conf)).decode()


def serve(conf: dict, listen: str | None = None):
    """Serve /metrics until stopped; returns (server, thread) of prometheus-client's HTTP server."""
    from prometheus_client import start_http_server

    host, _colon, port = (listen or conf.get("listen") or DEFAULT_LISTEN).rpartition(":")
    try:
        port_n = int(port)
    except ValueError as exc:
        raise BadInput(f"listen must be HOST:PORT, got {listen or conf.get('listen')!r}") from exc
    return start_http_server(port_n, addr=host or "127.0.0.1", registry=registry(conf))
