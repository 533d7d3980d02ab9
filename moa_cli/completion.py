"""Shell completion values (typer's mechanism: `moa --install-completion`).

Each function gets what the user typed so far and returns the candidates. They read only the
config file and the sessions database, and never fail: a broken config completes nothing rather
than printing an error into the user's command line.
"""

from __future__ import annotations


def _config() -> dict:
    try:
        from .config import load_config_file, paths

        return load_config_file(paths.config_file())
    except Exception:  # noqa: BLE001 - completion must never break the shell
        return {}


def _providers(config: dict) -> list[str]:
    from .providers import BUILTIN_PROVIDERS

    return sorted({*BUILTIN_PROVIDERS, *config.get("providers", {})})


def mix_names() -> list[str]:
    from .config.builtin_mixes import BUILTIN_MIXES

    return sorted({*BUILTIN_MIXES, *_config().get("mixes", {})})


def complete_mix(incomplete: str) -> list[str]:
    return [name for name in mix_names() if name.startswith(incomplete)]


def complete_model(incomplete: str) -> list[str]:
    """`PROVIDER:` prefixes, then the models the mixes name on that provider."""
    try:
        config = _config()
        prefixes = [f"{name}:" for name in _providers(config)]
        if ":" not in incomplete:
            return [p for p in prefixes if p.startswith(incomplete)]
        from .config import Overrides, load_env, resolve

        env = load_env()
        labels: set[str] = set()
        for name in mix_names():
            try:
                labels |= {m.label for m in resolve(Overrides(mix=name), env, config, stored_keys={}).mix.models()}
            except Exception:  # noqa: BLE001 - a mix that does not resolve offers nothing
                continue
        last = incomplete.rsplit(",", 1)
        head = last[0] + "," if len(last) == 2 else ""
        return [head + label for label in sorted(labels) if (head + label).startswith(incomplete)]
    except Exception:  # noqa: BLE001
        return []


def complete_provider(incomplete: str) -> list[str]:
    try:
        return [name for name in _providers(_config()) if name.startswith(incomplete)]
    except Exception:  # noqa: BLE001
        return []


def complete_role(incomplete: str) -> list[str]:
    return [name for name in _config().get("roles", {}) if name.startswith(incomplete)]


def complete_session(incomplete: str) -> list[str]:
    try:
        from .config import paths
        from .store import Store

        if not paths.sessions_db().exists():
            return []
        with Store.open() as store:
            sessions = store.list_sessions(50)
        return [key for s in sessions for key in (str(s.id), s.name) if key and key.startswith(incomplete)]
    except Exception:  # noqa: BLE001
        return []
