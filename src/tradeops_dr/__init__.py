"""tradeops.dr from Python: run the recovery playbooks through ansible-runner, manage the
sandbox stack, run drills.

Imports are lazy (PEP 562) so that the kill-switch fast path does not pay for importing
ansible-runner and Ansible before the flag is set."""

# pylint: disable=undefined-all-variable
__all__ = ["Failure", "RunResult", "run_playbook", "RecoveryResult", "ComponentOutcome", "recover", "recover_events",
           "recover_and_approve", "errors", "catalog"]
_FROM = {"RecoveryResult": "recovery", "ComponentOutcome": "recovery", "recover": "recovery",
         "recover_events": "recovery", "recover_and_approve": "recovery"}
__version__ = "0.1.0"


def __getattr__(name):
    if name in __all__:
        import importlib

        if name in ("errors", "catalog"):
            return importlib.import_module("." + name, __name__)
        return getattr(importlib.import_module("." + _FROM.get(name, "api"), __name__), name)
    raise AttributeError(name)
