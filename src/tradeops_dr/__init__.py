"""tradeops.dr from Python: run the recovery playbooks through ansible-runner, manage the
sandbox stack, run drills.

Imports are lazy (PEP 562) so that the kill-switch fast path does not pay for importing
ansible-runner and Ansible before the flag is set."""

__all__ = ["Failure", "RunResult", "run_playbook"]  # pylint: disable=undefined-all-variable
__version__ = "0.1.0"


def __getattr__(name):
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(name)
