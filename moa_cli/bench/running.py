"""What every kind of bench run shares: how many calls it keeps in flight, and its event loop.

Kept apart from command.py so that the plain, the search and the MT-Bench commands can all use
it without importing each other.
"""

from __future__ import annotations

import asyncio

DEFAULT_CONCURRENCY = 4


def all_local(settings, systems) -> bool:
    """Local models answer one call at a time: running items side by side would only make each
    wait for the others, and its latency would count the wait."""
    return all(settings.providers[name].kind == "local" for s in systems for name in s.settings.mix.providers())


def run_loop(main) -> None:
    """Run the event loop; a file that cannot be written (a full disk) is one clear error, exit 5."""
    from .predictions import OutputError

    try:
        asyncio.run(main())
    except (OSError, BaseExceptionGroup) as raised:
        # A write can fail inside task groups nested to any depth (the runner's, a sandbox's):
        # look through them all, so the full disk is one line however it surfaced.
        error = _first_os_error(raised)
        if error is None:
            raise
        raise OutputError(f"cannot save the results: {getattr(error, 'strerror', None) or error}") from None


def _first_os_error(error: BaseException) -> OSError | None:
    if isinstance(error, OSError):
        return error
    for inner in getattr(error, "exceptions", ()):
        if (found := _first_os_error(inner)) is not None:
            return found
    return None
