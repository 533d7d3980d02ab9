"""`moa keys set|list|delete`: save (or forget) a provider's API key (hidden input, file mode 0600), or say which
providers have one and where it comes from. A key is never printed."""

from __future__ import annotations

import os
import sys

from ..config import keystore, load_config_file, load_env, load_providers, paths
from ..errors import ConfigError, UsageError
from ..output import warn
from ..providers import BUILTIN_PROVIDERS, env_key


def run(action: str, provider: str | None) -> None:
    config_path = paths.config_file()
    try:
        providers = load_providers(load_config_file(config_path), config_path)
    except ConfigError as error:
        # Saving or listing keys must not depend on a config file that is being fixed.
        providers = dict(BUILTIN_PROVIDERS)
        warn(f"warning: {error.message} (only built-in providers are known until it is fixed)")
    if action == "list":
        env, stored = load_env(), keystore.load_keys()
        for name, spec in sorted(providers.items()):
            in_env = env_key(spec, env) is not None
            if in_env:
                origin = "the environment" if os.environ.get(spec.api_key_env) else "the .env file"
                state = f"set in {origin} ({spec.api_key_env})"
                if name in stored:
                    state += "; a saved key is ignored while it is set"
            elif name in stored:
                state = f"saved in {paths.keys_file()}"
            elif spec.kind == "local" or not spec.api_key_env and not spec.key_required:
                state = "no key needed"
            elif not spec.key_required:
                state = f"no key needed (optional: {spec.api_key_env})"
            else:
                variable = f"set {spec.api_key_env} or " if spec.api_key_env else ""
                state = f"not set ({variable}run `moa keys set {name}`)"
            sys.stdout.write(f"{name:12} {state}\n")
    elif action == "set":
        if not provider:
            raise UsageError("`moa keys set` needs a provider name, e.g. `moa keys set together`")
        spec = providers.get(provider)
        if spec is None:
            raise UsageError(f"unknown provider '{provider}'; known providers: {', '.join(sorted(providers))}")
        if spec.kind == "local":
            raise UsageError(f"provider '{provider}' runs models on this machine and uses no API key")
        key = _read_secret(f"API key for {provider} (input hidden): ")
        if not key:
            raise UsageError("no key given; nothing saved")
        if any(ch.isspace() for ch in key):
            raise UsageError("the key contains spaces or line breaks; nothing saved")
        keystore.save_key(provider, key)
        sys.stdout.write(f"saved the key for {provider} in {paths.keys_file()} (readable by you only)\n")
        if env_key(spec, load_env()):
            warn(f"note: {spec.api_key_env} is set in the environment and wins over the saved key")
    elif action == "delete":
        if not provider:
            raise UsageError("`moa keys delete` needs a provider name, e.g. `moa keys delete together`")
        if keystore.delete_key(provider):
            sys.stdout.write(f"deleted the saved key for {provider}\n")
            spec = providers.get(provider)
            if spec is not None and env_key(spec, load_env()):
                warn(f"note: {spec.api_key_env} is still set in the environment or .env")
        else:
            raise UsageError(f"no saved key for '{provider}' (see `moa keys list`)")
    else:
        raise UsageError(f"unknown action '{action}': use `moa keys list`, `moa keys set PROVIDER` "
                         "or `moa keys delete PROVIDER`")


def _read_secret(prompt: str) -> str:
    if sys.stdin.isatty():
        import getpass

        return getpass.getpass(prompt).strip()  # no echo on the terminal
    return sys.stdin.readline().strip()  # scripted use: `printf %s "$KEY" | moa keys set together`
