"""`moa config path|show|init`: where the config file is, the file checked and shown with its
secrets hidden, or a commented example written (never over an existing file)."""

from __future__ import annotations

import sys

from ..config import keystore, load_source, paths, secret_values
from ..config.redacted_view import redacted
from ..config.toml_write import dump_toml
from .. import strategies
from ..errors import UsageError
from ..secrets import redact
from ..files import make_private_dir, write_atomic

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
# timeout = 60               # seconds: the longest silence allowed between two pieces of an answer
# deadline = 300             # total seconds one call may take, retries included (default: 5x timeout)
# retries = 2
# log = true                 # save every turn in the sessions database
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
# strategy = "synthesize"    # or STRATEGIES, or a template using {answers} and {question}
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

## Roles: a system prompt (and optionally a mix) for `--role reviewer` or `/role reviewer` in chat.
# [roles.reviewer]
# description = "a strict code reviewer"
# system = "You review code. Point out bugs first, then style."
# mix = "coding-oss"
"""
# The strategies offered are the registered ones, so a new strategy is listed without an edit here.
EXAMPLE_CONFIG = EXAMPLE_CONFIG.replace(
    "STRATEGIES", ", ".join(f'"{name}"' for name in strategies.names() if name != strategies.DEFAULT))


def run(action: str) -> None:
    path = paths.config_file()
    if action == "path":
        sys.stdout.write(f"{path}\n")
    elif action == "show":
        # Checks every section and user mix: a broken file is reported (exit 2), never shown as fine.
        source = load_source()
        settings = source.settings()
        from ..roles import load_roles

        load_roles()  # the [roles.NAME] tables too
        if not path.exists():
            sys.stdout.write(f"# {path} does not exist: built-in mixes and defaults are in use.\n"
                             "# `moa config init` writes a commented example there.\n")
            return
        secrets = secret_values(settings.providers, settings.provider_env, keystore.load_keys())
        sys.stdout.write(
            f"# {path}: valid. Default mix: {source.default_mix_name()}. Secrets are shown as ***.\n"
            + redact(dump_toml(redacted(source.config, secrets)), secrets)
        )
    elif action == "init":
        make_private_dir(path.parent)
        try:  # all or nothing (a full disk leaves no empty file), and never over an existing file
            write_atomic(path, EXAMPLE_CONFIG, mode=0o600, overwrite=False)
        except FileExistsError:
            raise UsageError(f"{path} already exists; not overwriting it (`moa config show` prints it)") from None
        sys.stdout.write(f"wrote {path}\n")
    else:
        raise UsageError(f"unknown action '{action}': use `moa config path`, `show` or `init`")
