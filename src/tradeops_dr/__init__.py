"""tradeops.dr from Python: run the recovery playbooks through ansible-runner, manage the
sandbox stack, run drills."""

from .api import Failure, RunResult, run_playbook

__all__ = ["Failure", "RunResult", "run_playbook"]
__version__ = "0.1.0"
