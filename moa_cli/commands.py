"""Small management commands: mixes, models, config, keys.

Output is plain text on stdout (so it pipes cleanly); notices and errors go to stderr. No command
here ever prints an API key: `config show` redacts keys and credential headers, `keys list`
only says where a key comes from.
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import sys
import textwrap
from typing import Any, Mapping

from . import keys as keystore
from . import mixes as builtin_mixes
from . import paths
from .config import Overrides, load_config_file, load_env, load_providers, load_settings, resolve, secret_values
from .errors import ConfigError, UsageError, redact
from .models import Mix, ModelSettings
from .providers import BUILTIN_PROVIDERS, is_credential_header
from .validate import toml_key, toml_string

EXAMPLE_CONFIG = """\
## moa configuration (TOML). Every section is optional: built-in mixes and providers always exist.
## Lines starting with a single '#' are examples: remove the '# ' to use them.
## `moa config show` checks this file; `moa mixes show NAME` prints any mix in this format.

## Defaults for every run; command-line flags override them.
# [defaults]
# mix = "together-2025"      # the mix used when no --mix is given
# temperature = 0.7          # any per-model setting: temperature, max_tokens, system, timeout, ...
# max_tokens = 1024
# reference_max_tokens = 512 # a cap for reference models only
# timeout = 60               # seconds per call (connect and read)
# retries = 2
# min_proposers = 1          # answers a round needs before a straggler may be cut
# proposer_deadline = 30     # cut stragglers this many seconds into a round (default: cut a
#                            # reference that sent nothing for max(15 s, 2x the answers' time))

## Any OpenAI-compatible endpoint becomes a provider; use it as "mylab:MODEL".
# [providers.mylab]
# base_url = "http://127.0.0.1:8000/v1"
# api_key_env = "MYLAB_API_KEY"      # the variable holding the key (never the key itself)
# headers = { "X-Team" = "research" }  # sent with every request; "${VAR}" reads the environment

## A mix: reference layers (one list of models per round) and an aggregator.
# [mixes.mine]
# description = "two fast models, one careful aggregator"
# layers = [["together:meta-llama/Llama-3.3-70B-Instruct-Turbo", "mylab:qwen2.5-7b"]]
# aggregator = "together:deepseek-ai/DeepSeek-V3"
# rounds = 2                 # repeat the last layer to make two rounds
# strategy = "synthesize"    # or "rank", "coding", or a template using {answers} and {question}
# shuffle = true             # shuffle the answers so the aggregator cannot favour a position
# max_tokens = 512           # mix-level settings apply to every model of the mix
## Per-model settings: above mix-level values, below the entry's own inline table.
# [mixes.mine.models."mylab:qwen2.5-7b"]
# temperature = 0.2
# system = "Answer briefly."
# timeout = 30
# weight = 0.5               # lower weight: less preferred as a fallback answer

## Shorthand: the same references every round; entries may be inline tables.
# [mixes.judge]
# references = ["together:Qwen/Qwen2.5-72B-Instruct-Turbo", { model = "together:deepseek-ai/DeepSeek-V3", temperature = 0.2, seed = 7 }]
# rounds = 1
# aggregator = "together:deepseek-ai/DeepSeek-V3"
# strategy = "Pick the most accurate answer to: {question}\\n\\n{answers}\\n\\nReply with that answer only."

## GGUF files for the local provider: then use "local:tiny".
# [local.models]
# tiny = "/path/to/model.gguf"

## Prices for the cost line, in dollars per million tokens (extends the built-in table).
# [pricing."mylab:qwen2.5-7b"]
# input = 0.10
# output = 0.30
"""


# ---------------------------------------------------------------- moa mixes


def mixes(action: str, name: str | None) -> None:
    if action not in ("list", "show"):
        if name is None:
            name, action = action, "show"  # `moa mixes NAME` is `moa mixes show NAME`
        else:
            raise UsageError(f"unknown action '{action}': use `moa mixes` or `moa mixes show NAME`")
    if action == "show":
        settings = load_settings(Overrides(mix=name))
        for notice in settings.notices:  # no name: the mix `moa ask` would run, maybe the local stand-in
            sys.stderr.write(f"moa: {notice}\n")
        sys.stdout.write(show_mix(settings.mix, settings.mix_data(settings.mix.name), settings.mix_origin(settings.mix.name)))
        return
    settings = load_settings(Overrides())
    default = settings.default_mix_name()
    blocks = []
    for mix_name in settings.mix_names():
        mix = resolve(Overrides(mix=mix_name), settings.env, settings.config, settings.config_path).mix
        data, origin = settings.mix_data(mix_name), settings.mix_origin(mix_name)
        tags = ["default"] if mix_name == default else []
        if origin != "built-in":
            tags.append(f"[mixes.{toml_key(mix_name)}] in {origin}")
            if mix_name in builtin_mixes.BUILTIN_MIXES:
                tags.append("replaces the built-in mix of that name")
        lines = [mix_name + (f" ({'; '.join(tags)})" if tags else "")]
        if mix.description:
            lines.append(f"    {mix.description}")
        lines.append(f"    {describe_shape(mix)}")
        if data.get("source"):
            lines.extend(textwrap.wrap(f"source: {data['source']}", width=96, initial_indent="    ",
                                       subsequent_indent="      ", break_on_hyphens=False,
                                       break_long_words=False))
        blocks.append("\n".join(lines))
    sys.stdout.write("\n\n".join(blocks) + "\n")
    sys.stdout.write("\n`moa mixes show NAME` prints a mix as a config table; `moa ask --mix NAME` uses it.\n")


def describe_shape(mix: Mix) -> str:
    agg = f"aggregator {mix.aggregator.label}"
    if not mix.layers:
        return f"the {agg} alone"
    rounds = f"{mix.rounds} round{'s' if mix.rounds != 1 else ''}"
    first = mix.layers[0]
    labels = {m.label for m in first}
    if len(labels) == 1 and len(first) > 1:
        refs = f"{len(first)} samples of {first[0].label}"
    else:
        refs = f"{len(first)} reference{'s' if len(first) != 1 else ''}"
    return f"{rounds} of {refs}, then the {agg}"


def show_mix(mix: Mix, data: Mapping[str, Any], origin: str) -> str:
    where = "a built-in mix" if origin == "built-in" else f"[mixes.{toml_key(mix.name)}] in {origin}"
    head = (f"# {mix.name}: {where}, resolved (defaults, per-model tables and flags applied).\n"
            "# Paste it into your config file (`moa config path`) to make your own version.\n")
    return head + mix_to_toml(mix, source=data.get("source"))


def mix_to_toml(mix: Mix, source: str | None = None) -> str:
    """A resolved mix as a `[mixes.NAME]` table that parses back (tomllib) to the same mix."""
    lines = [f"[mixes.{toml_key(mix.name)}]"]
    if mix.description:
        lines.append(f"description = {toml_value(mix.description)}")
    if source:
        lines.append(f"source = {toml_value(source)}")
    lines.append(f"rounds = {mix.rounds}")
    lines.append(f"strategy = {toml_value(mix.strategy)}")
    lines.append(f"shuffle = {toml_value(mix.shuffle)}")
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
    return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in fields.items() if v is not None) + " }"


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return repr(v) if math.isfinite(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, int):
        return str(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{toml_key(str(k))} = {toml_value(x)}" for k, x in v.items()) + " }"
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return toml_string(str(v))


def dump_toml(data: Mapping[str, Any]) -> str:
    """A parsed config written back as TOML (tables as [sections], lists and nested values inline)."""
    lines: list[str] = []

    def table(path: list[str], values: Mapping[str, Any]) -> None:
        plain = [(k, v) for k, v in values.items() if not isinstance(v, dict)]
        nested = [(k, v) for k, v in values.items() if isinstance(v, dict)]
        if path and (plain or not nested):
            lines.extend(["", "[" + ".".join(toml_key(str(p)) for p in path) + "]"])
        lines.extend(f"{toml_key(str(k))} = {toml_value(v)}" for k, v in plain)
        for k, v in nested:
            table(path + [k], v)

    table([], data)
    return "\n".join(lines).lstrip("\n") + "\n"


# ---------------------------------------------------------------- moa models


def models(provider_name: str) -> None:
    from .providers import build_provider

    env = load_env()
    config_path = paths.config_file()
    config = load_config_file(config_path)
    settings = resolve(Overrides(), env, config, config_path)  # checks the whole file
    providers = settings.providers
    spec = providers.get(provider_name)
    if spec is None:
        raise UsageError(f"unknown provider '{provider_name}'; known providers: {', '.join(sorted(providers))}")
    provider = build_provider(spec, env, keystore.load_keys(), settings.local_models)

    async def fetch():
        try:
            return await provider.list_models()
        finally:
            await provider.aclose()

    names = asyncio.run(fetch())
    if not names:
        sys.stderr.write(f"moa: provider '{provider_name}' lists no models\n")
    for model_id in names:
        sys.stdout.write(f"{provider_name}:{model_id}\n")


# ---------------------------------------------------------------- moa config


def config(action: str) -> None:
    path = paths.config_file()
    if action == "path":
        sys.stdout.write(f"{path}\n")
    elif action == "show":
        data = load_config_file(path)  # a broken file is reported (exit 2), never shown as fine
        env = load_env()
        settings = resolve(Overrides(mix=None), env, data, path)  # checks every section and user mix
        if not path.exists():
            sys.stdout.write(f"# {path} does not exist: built-in mixes and defaults are in use.\n"
                             "# `moa config init` writes a commented example there.\n")
            return
        secrets = secret_values(settings.providers, env, keystore.load_keys())
        sys.stdout.write(
            f"# {path}: valid. Default mix: {settings.default_mix_name()}. Secrets are shown as ***.\n"
            + redact(dump_toml(_redacted(data, secrets)), secrets)
        )
    elif action == "init":
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with path.open("x", encoding="utf-8") as handle:  # "x": never overwrite, not even in a race
                handle.write(EXAMPLE_CONFIG)
        except FileExistsError:
            raise UsageError(f"{path} already exists; not overwriting it (`moa config show` prints it)") from None
        sys.stdout.write(f"wrote {path}\n")
    else:
        raise UsageError(f"unknown action '{action}': use `moa config path`, `show` or `init`")


def _redacted(value, secrets: tuple[str, ...], header_table: bool = False):
    """A copy of parsed config data with credential headers and known secrets replaced by ***."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if header_table and is_credential_header(str(k)) and isinstance(v, str) and "${" not in v:
                out[k] = "***"
            else:
                out[k] = _redacted(v, secrets, header_table=(k == "headers"))
        return out
    if isinstance(value, list):
        return [_redacted(v, secrets) for v in value]
    if isinstance(value, str):
        value = _URL_PASSWORD.sub(r"\1***@", value)
        value = _URL_SECRET_PARAM.sub(r"\1***", value)
        return redact(value, secrets)
    return value


_URL_PASSWORD = re.compile(r"(://[^/:@\s]+:)[^@/\s]+@")  # https://user:PASSWORD@host
_URL_SECRET_PARAM = re.compile(r"([?&][^=&\s]*(?:key|token|secret|sig|password)[^=&\s]*=)[^&\s#]+", re.I)


# ---------------------------------------------------------------- moa keys


def keys(action: str, provider: str | None) -> None:
    config_path = paths.config_file()
    try:
        providers = load_providers(load_config_file(config_path), config_path)
    except ConfigError as error:
        # Saving or listing keys must not depend on a config file that is being fixed.
        providers = dict(BUILTIN_PROVIDERS)
        sys.stderr.write(f"moa: warning: {error.message} (only built-in providers are known until it is fixed)\n")
    if action == "list":
        env, stored = load_env(), keystore.load_keys()
        for name, spec in sorted(providers.items()):
            in_env = bool(spec.api_key_env and env.get(spec.api_key_env))
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
        if spec.api_key_env and load_env().get(spec.api_key_env):
            sys.stderr.write(f"moa: note: {spec.api_key_env} is set in the environment and wins over the saved key\n")
    else:
        raise UsageError(f"unknown action '{action}': use `moa keys list` or `moa keys set PROVIDER`")


def _read_secret(prompt: str) -> str:
    if sys.stdin.isatty():
        import getpass

        return getpass.getpass(prompt).strip()  # no echo on the terminal
    return sys.stdin.readline().strip()  # scripted use: `printf %s "$KEY" | moa keys set together`
