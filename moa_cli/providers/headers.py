"""Configured HTTP headers: `${VAR}` expansion and which values are credentials.

Apart from the package, so that the provider modules (openai_compat, together_sdk) can use it
without importing the package that builds them.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Mapping

from ..errors import MissingKeyError
from ..secrets import register_secrets

if TYPE_CHECKING:
    from .presets import ProviderSpec

ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Header names whose values are credentials: redacted from errors and from `moa config show`.
_CREDENTIAL_HEADER = re.compile(r"auth|key|token|secret|password|cookie|signature|session", re.I)


def is_credential_header(name: str) -> bool:
    return bool(_CREDENTIAL_HEADER.search(name))


def header_secrets(headers: Mapping[str, str]) -> tuple[str, ...]:
    """The values of credential headers, and their parts ("Bearer <token>"), for redaction."""
    out: list[str] = []
    for name, value in (headers or {}).items():
        if is_credential_header(name):
            out.append(value)
            out.extend(part for part in value.split() if len(part) >= 8)
    return tuple(out)


def expand_headers(spec: "ProviderSpec", env: Mapping[str, str]) -> dict[str, str]:
    """Header values with `${VAR}` taken from the environment, so a credential header (say
    `api-key = "${AZURE_KEY}"`) never has to be written into the config file. Every value read
    from the environment is treated as a secret, whatever the header is called."""

    def value(match: re.Match) -> str:
        name = match.group(1)
        text = (env.get(name) or "").strip()
        if not text:
            raise MissingKeyError(
                f"provider '{spec.name}': a header uses ${{{name}}} but {name} is not set "
                "(set it in the environment or a .env file)",
                provider=spec.name,
            )
        register_secrets(text)
        if not text.isprintable():
            raise MissingKeyError(f"provider '{spec.name}': ${{{name}}} contains control characters", provider=spec.name)
        return text

    expanded = {k: ENV_REF.sub(value, v) for k, v in spec.headers.items()}
    register_secrets(*(v for k, v in expanded.items() if v != spec.headers[k]))
    return expanded
