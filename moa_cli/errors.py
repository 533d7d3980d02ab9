"""Every error a user can see, each with its documented exit code.

Anything raised past a provider boundary is one of these; SDK exception types never escape.
"""

from __future__ import annotations

from .failure import FailureKind

# Exit codes (documented in README.md).
EXIT_OK = 0
EXIT_TURN_FAILED = 1  # every reference failed, or the aggregator failed with no fallback
EXIT_USAGE = 2  # bad flag value, bad config, unknown mix/provider, empty or binary stdin
EXIT_AUTH = 3  # missing or rejected API key
EXIT_PROVIDER = 4  # provider outage, unknown model, bad request, timeout
EXIT_OUTPUT = 5  # the output could not be written (a full disk, a closed stdout)
EXIT_INTERRUPTED = 130  # Ctrl-C


class MoaError(Exception):
    """Base: a one-line message for the user plus the process exit code."""

    exit_code = EXIT_TURN_FAILED

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(MoaError):
    exit_code = EXIT_USAGE


class ConfigError(MoaError):
    exit_code = EXIT_USAGE


class TurnFailed(MoaError):
    """The turn produced no answer; `turn` keeps every answer that did arrive, `failures` the
    `Failure`s that decided it (every reference of a round, or the aggregator)."""

    exit_code = EXIT_TURN_FAILED

    def __init__(self, message: str, turn=None, failures=()):
        super().__init__(message)
        self.turn = turn
        self.failures = tuple(failures)
        # Rejected keys everywhere deserve the key exit code, so scripts can tell them apart.
        if self.failures and all(f.kind is FailureKind.HTTP and f.status in (401, 403) for f in self.failures):
            self.exit_code = EXIT_AUTH


class ProviderError(MoaError):
    """A call to a model failed. `kind` says how (an HTTP status, a timeout, a lost connection...),
    `retryable` whether trying again can help, `detail` what happened without the call's label
    (the message is `detail` prefixed by `provider:model`, for the user)."""

    exit_code = EXIT_PROVIDER

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        model: str = "",
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
        kind: FailureKind | None = None,
        detail: str | None = None,
    ):
        super().__init__(message)
        self.provider = provider
        self.model = model
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after
        self.kind = kind or (FailureKind.HTTP if status is not None else FailureKind.INTERNAL)
        self.detail = message if detail is None else detail


class AuthError(ProviderError):
    exit_code = EXIT_AUTH


class MissingKeyError(AuthError):
    pass


class ModelNotFound(ProviderError):
    pass
