"""The exceptions tradeops_dr raises to its callers: one base to catch them all, and one kind per
cause. Each also derives from the built-in exception it replaces (ValueError for bad input,
RuntimeError for the rest), so code written against those keeps working.

    from tradeops_dr import recover, errors
    try:
        result = recover("full", approve=code)         # a failed recovery is a result, never raised
    except errors.BadInput as exc:                      # the request itself is wrong: fix it, run again
        ...
    except errors.TradeopsDrError as exc:               # the collection, the sandbox or a server is missing
        ..."""

from __future__ import annotations


class TradeopsDrError(Exception):
    """Anything tradeops_dr raises on purpose."""


class BadInput(TradeopsDrError, ValueError):
    """The request is wrong (an unknown scenario, an approval without its incident): nothing was run."""


class CollectionNotFound(TradeopsDrError, RuntimeError):
    """The tradeops.dr collection (a checkout or an installed collection) cannot be found or read."""


class SandboxError(TradeopsDrError, RuntimeError):
    """The sandbox stack cannot do what was asked (a part it does not run, a server that did not come up)."""


class RehearsalError(TradeopsDrError, RuntimeError):
    """A Molecule rehearsal cannot be set up (the Docker engine, an image)."""
