"""Drills: inject a real failure into the sandbox stack, run the recovery through ansible-runner,
and check and print what happened and how long the recovery took - one module per drill family
(data stores, trading side, the book, front door), what they share in `steps`."""

from __future__ import annotations

from .book import pms_drill
from .datastores import config_drill, database_drill, fileset_drill, model_drill, questdb_drill, redis_drill
from .front_door import detect_drill, full_drill
from .pipelines import pipeline_drill
from .steps import DrillStep, Printer, Steps, operator_resets_the_switch, print_header, print_report, print_step
from .trading import broker_drill, feed_drill, kill_switch_drill, trading_drill

__all__ = ["DRILLS", "DrillStep", "Printer", "Steps", "operator_resets_the_switch", "print_header", "print_report",
           "print_step"]

# Every drill of `tradeops-dr drill` (and bench/drill.py), in the order `all` runs them: (name on the
# command line, function, what it drills). The full drill goes last: it ends with the operator's reset.
DRILLS = [("redis", redis_drill, "Redis: crash, data loss, damaged AOF"),
          ("kill-switch", kill_switch_drill, "kill switch: the monthly drill with stand-in engines"),
          ("database", database_drill, "database: backup, damage restored, disk full, server down"),
          ("questdb", questdb_drill, "QuestDB: a suspended WAL table, a crash, a checkpoint restore"),
          ("model", model_drill, "model: a corrupted model file, a bad version"),
          ("config", config_drill, "config: a file cut short, a bad change"),
          ("fileset", fileset_drill, "file-state sets: the state folder damaged, restored from a set"),
          ("broker", broker_drill, "broker failover: IBKR down (rolled back from a dead target, then Paper)"),
          ("feed", feed_drill, "feed failover: the primary feed down, the backup made primary"),
          ("trading", trading_drill, "trading side: strategy crash, exchange disconnect, position mismatch, "
           "release rollback, risk breach"),
          ("pms", pms_drill, "book corrections: a position booked with the wrong size, a wrong mark-to-market "
           "(PMS stand-in)"),
          ("pipeline", pipeline_drill, "data pipeline: a failed run, then Dagster down (a real Dagster running the "
           "stand-in morning pack)"),
          ("detect", detect_drill, "from alert to recovery: a drawdown breach and a Redis crash answered by "
           "Prometheus, Alertmanager and ansible-rulebook, nobody running a command"),
          ("full", full_drill, "everything at once through full_recovery.yml, then a second run")]
