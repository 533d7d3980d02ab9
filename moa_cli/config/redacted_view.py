"""Config data as it may be shown: which strings are secrets, and config data with them replaced by ***.

Used wherever configuration is shown (`moa config show`) and wherever a message might carry a
key (secrets.redact does the replacing in text).
"""

from __future__ import annotations

import re
from typing import Mapping

from ..secrets import redact
from ..providers import ENV_REF, ProviderSpec, header_secrets, is_credential_header


def secret_values(
    providers: Mapping[str, ProviderSpec], env: Mapping[str, str], stored: Mapping[str, str]
) -> tuple[str, ...]:
    """Every string that must never be printed: known keys and credential-like header values."""
    values: set[str] = set(stored.values())
    for spec in providers.values():
        if spec.api_key_env and env.get(spec.api_key_env):
            values.add(env[spec.api_key_env])
        for header, value in spec.headers.items():
            for name in ENV_REF.findall(value):  # `${VAR}` in a header: its value is a secret too
                if env.get(name):
                    values.add(env[name])
            if not ENV_REF.search(value):
                values.update(header_secrets({header: value}))
    return tuple(sorted((v for v in values if len(v) >= 4), key=len, reverse=True))


def redacted(value, secrets: tuple[str, ...], header_table: bool = False):
    """A copy of parsed config data with credential headers and known secrets replaced by ***."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if header_table and is_credential_header(str(k)) and isinstance(v, str) and "${" not in v:
                out[k] = "***"
            else:
                out[k] = redacted(v, secrets, header_table=(k == "headers"))
        return out
    if isinstance(value, list):
        return [redacted(v, secrets) for v in value]
    if isinstance(value, str):
        value = _URL_PASSWORD.sub(r"\1***@", value)
        value = _URL_SECRET_PARAM.sub(r"\1***", value)
        return redact(value, secrets)
    return value


_URL_PASSWORD = re.compile(r"(://[^/:@\s]+:)[^@/\s]+@")  # https://user:PASSWORD@host
_URL_SECRET_PARAM = re.compile(r"([?&][^=&\s]*(?:key|token|secret|sig|password)[^=&\s]*=)[^&\s#]+", re.I)
