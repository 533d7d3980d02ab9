"""Small management commands: mixes, models, config, keys."""

from __future__ import annotations

import asyncio
import sys

from rich.console import Console
from rich.table import Table

from . import keys as keystore
from . import paths
from .config import Overrides, load_config_file, load_env, load_settings, resolve
from .errors import ConfigError, UsageError, redact
from .models import Mix, ModelSettings

console = Console(highlight=False)

EXAMPLE_CONFIG = """\
# moa configuration. Every section is optional; built-in mixes and providers always exist.

[defaults]
# mix = "together-2025"      # the mix used when no --mix is given
# temperature = 0.7
# max_tokens = 1024
# timeout = 60               # seconds per call (connect and read)
# retries = 2
# proposer_deadline = 120    # cut slow references after this many seconds...
# min_proposers = 1          # ...once this many answers of the round are in

# Any OpenAI-compatible endpoint becomes a provider:
# [providers.mylab]
# base_url = "http://127.0.0.1:8000/v1"
# api_key_env = "MYLAB_API_KEY"      # the variable holding the key (never the key itself)
# headers = { "X-Team" = "research" }

# [mixes.mine]
# description = "two fast models, one careful aggregator"
# layers = [["together:meta-llama/Llama-3.3-70B-Instruct-Turbo", "mylab:qwen2.5-7b"]]
# aggregator = "together:deepseek-ai/DeepSeek-V3"
# rounds = 1
# strategy = "synthesize"    # or "rank", or a template using {answers} and {question}
# shuffle = true             # shuffle answers so the aggregator cannot learn a position
# max_tokens = 512           # applies to every model of the mix
# [mixes.mine.models."mylab:qwen2.5-7b"]
# temperature = 0.2
# system = "Answer briefly."
# timeout = 30
# weight = 0.5               # lower weight: less preferred as a fallback answer

# [local.models]
# tiny = "/path/to/model.gguf"   # then use local:tiny

# [pricing."mylab:qwen2.5-7b"]
# input = 0.10               # dollars per million prompt tokens
# output = 0.30
"""


def mixes(action: str, name: str | None) -> None:
    if action not in ("list", "show"):
        raise UsageError(f"unknown action '{action}': use `moa mixes` or `moa mixes show NAME`")
    settings = load_settings(Overrides(mix=name) if name else Overrides())
    if action == "show":
        if not name:
            raise UsageError("`moa mixes show` needs a mix name")
        sys.stdout.write(mix_to_toml(settings.mix))
        return
    table = Table(box=None, header_style="bold")
    for column in ("mix", "rounds", "references", "aggregator", "description"):
        table.add_column(column)
    env, config = settings.env, settings.config
    for mix_name in settings.mix_names():
        mix = resolve(Overrides(mix=mix_name), env, config, settings.config_path).mix
        refs = len({m.label for layer in mix.layers for m in layer})
        table.add_row(mix_name, str(mix.rounds), str(refs), mix.aggregator.label, mix.description)
    console.print(table)


def mix_to_toml(mix: Mix) -> str:
    lines = [f"[mixes.{_key(mix.name)}]"]
    if mix.description:
        lines.append(f"description = {_value(mix.description)}")
    lines.append(f"rounds = {mix.rounds}")
    lines.append(f"strategy = {_value(mix.strategy)}")
    lines.append(f"shuffle = {_value(mix.shuffle)}")
    lines.append("layers = [")
    for layer in mix.layers:
        lines.append("  [")
        lines.extend(f"    {_model_table(m)}," for m in layer)
        lines.append("  ],")
    lines.append("]")
    lines.append(f"aggregator = {_model_table(mix.aggregator)}")
    return "\n".join(lines) + "\n"


def _model_table(m: ModelSettings) -> str:
    fields = {"model": m.label, "temperature": m.temperature, "max_tokens": m.max_tokens, "system": m.system,
              "timeout": m.timeout, "seed": m.seed, "weight": m.weight if m.weight != 1.0 else None,
              "context_window": m.context_window}
    return "{ " + ", ".join(f"{k} = {_value(v)}" for k, v in fields.items() if v is not None) + " }"


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    import json

    return json.dumps(str(v), ensure_ascii=False)  # a JSON string is a valid TOML basic string


def _key(name: str) -> str:
    return name if name.replace("-", "").replace("_", "").isalnum() else _value(name)


def models(provider_name: str) -> None:
    from .providers import build_provider

    settings = load_settings(Overrides(mix=None))
    spec = settings.providers.get(provider_name)
    if spec is None:
        raise UsageError(f"unknown provider '{provider_name}'; known: {', '.join(sorted(settings.providers))}")
    provider = build_provider(spec, settings.env, keystore.load_keys(), settings.local_models)

    async def fetch():
        try:
            return await provider.list_models()
        finally:
            await provider.aclose()

    for model_id in asyncio.run(fetch()):
        sys.stdout.write(f"{provider_name}:{model_id}\n")


def config(action: str) -> None:
    path = paths.config_file()
    if action == "path":
        sys.stdout.write(f"{path}\n")
    elif action == "show":
        data = load_config_file(path)  # validates: a broken file is reported, not shown as fine
        resolve(Overrides(), load_env(), data, path)
        if not path.exists():
            sys.stdout.write(f"# {path} does not exist; built-in defaults are in use (`moa config init`)\n")
            return
        sys.stdout.write(f"# {path}\n{redact(path.read_text(encoding='utf-8'), tuple(keystore.load_keys().values()))}")
    elif action == "init":
        if path.exists():
            raise UsageError(f"{path} already exists; not overwriting it")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(EXAMPLE_CONFIG, encoding="utf-8")
        sys.stdout.write(f"wrote {path}\n")
    else:
        raise UsageError(f"unknown action '{action}': use path, show or init")


def keys(action: str, provider: str | None) -> None:
    settings_providers = resolve(Overrides(), {}, load_config_file(paths.config_file())).providers
    if action == "list":
        env, stored = load_env(), keystore.load_keys()
        for name, spec in sorted(settings_providers.items()):
            if spec.api_key_env and env.get(spec.api_key_env):
                state = f"set (environment: {spec.api_key_env})"
            elif name in stored:
                state = f"set (key file {paths.keys_file()})"
            elif not spec.key_required:
                state = "not needed"
            else:
                state = f"not set ({spec.api_key_env or 'no variable'})"
            sys.stdout.write(f"{name:12} {state}\n")
    elif action == "set":
        if not provider:
            raise UsageError("`moa keys set` needs a provider name, e.g. `moa keys set together`")
        if provider not in settings_providers:
            raise UsageError(f"unknown provider '{provider}'; known: {', '.join(sorted(settings_providers))}")
        key = _read_secret(f"API key for {provider}: ")
        if not key:
            raise UsageError("no key given; nothing saved")
        keystore.save_key(provider, key)
        sys.stdout.write(f"saved the key for {provider} in {paths.keys_file()} (mode 0600)\n")
    else:
        raise ConfigError(f"unknown action '{action}': use set or list")


def _read_secret(prompt: str) -> str:
    if sys.stdin.isatty():
        import getpass

        return getpass.getpass(prompt).strip()
    return sys.stdin.readline().strip()  # scripted use: `printf KEY | moa keys set together`
