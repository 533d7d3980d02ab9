"""`moa mixes`: list the mixes and where each comes from, or print one resolved, as TOML."""

from __future__ import annotations

import sys
import textwrap
from typing import Any, Mapping

from .. import strategies
from ..config import Overrides, load_source
from ..config import builtin_mixes
from ..config.schema import Mix
from ..config.toml_write import mix_to_toml, toml_key
from ..errors import UsageError
from ..output import warn
from ..sanitize import one_line_safe


def run(action: str, name: str | None) -> None:
    if action not in ("list", "show"):
        if name is None:
            name, action = action, "show"  # `moa mixes NAME` is `moa mixes show NAME`
        else:
            raise UsageError(f"unknown action '{action}': use `moa mixes` or `moa mixes show NAME`")
    if action == "show":
        source = load_source()
        settings = source.settings(Overrides(mix=name))
        for notice in settings.all_notices():  # no name: the mix `moa ask` would run, maybe the local stand-in
            warn(notice)
        sys.stdout.write(show_mix(settings.mix, source.mix_data(settings.mix.name), source.mix_origin(settings.mix.name)))
        return
    source = load_source()
    source.settings()  # checks every section and user mix: a broken file is reported, not listed
    default = source.default_mix_name()
    blocks = []
    for mix_name in source.mix_names():
        mix = source.settings(Overrides(mix=mix_name)).mix
        data, origin = source.mix_data(mix_name), source.mix_origin(mix_name)
        tags = ["default"] if mix_name == default else []
        if origin != "built-in":
            tags.append(f"[mixes.{toml_key(mix_name)}] in {origin}")
            if mix_name in builtin_mixes.BUILTIN_MIXES:
                tags.append("replaces the built-in mix of that name")
        # Names, descriptions and model ids come from a config file: shown, never obeyed.
        lines = [one_line_safe(mix_name + (f" ({'; '.join(tags)})" if tags else ""))]
        if mix.description:
            lines.append(f"    {one_line_safe(mix.description)}")
        lines.append(f"    {one_line_safe(describe_shape(mix))}")
        if data.get("source"):
            lines.extend(textwrap.wrap(f"source: {one_line_safe(data['source'])}", width=96, initial_indent="    ",
                                       subsequent_indent="      ", break_on_hyphens=False,
                                       break_long_words=False))
        blocks.append("\n".join(lines))
    sys.stdout.write("\n\n".join(blocks) + "\n")
    sys.stdout.write("\n`moa mixes show NAME` prints a mix as a config table; `moa ask --mix NAME` uses it.\n")
    sys.stdout.write(strategy_list())


def strategy_list() -> str:
    """The registered strategies, for `moa mixes`: whatever is registered is listed."""
    width = max(len(s.name) for s in strategies.registered())
    rows = "".join(f"    {s.name:<{width}}  {s.description}\n" for s in strategies.registered())
    return ("`strategy = \"NAME\"` in a mix picks what its rounds ask (default "
            f"{strategies.DEFAULT}; or a template with {{answers}}):\n{rows}")


def describe_shape(mix: Mix) -> str:
    agg = f"aggregator {mix.aggregator.label}"
    strategy = "" if mix.strategy == strategies.DEFAULT else (
        f" ({mix.strategy})" if mix.strategy in strategies.names() else " (a template)")
    if not mix.layers:
        return f"the {agg} alone{strategy}"
    rounds = f"{mix.rounds} round{'s' if mix.rounds != 1 else ''}"
    first = mix.layers[0]
    labels = {m.label for m in first}
    if len(labels) == 1 and len(first) > 1:
        refs = f"{len(first)} samples of {first[0].label}"
    else:
        refs = f"{len(first)} reference{'s' if len(first) != 1 else ''}"
    return f"{rounds} of {refs}, then the {agg}{strategy}"


def show_mix(mix: Mix, data: Mapping[str, Any], origin: str) -> str:
    where = "a built-in mix" if origin == "built-in" else f"[mixes.{toml_key(mix.name)}] in {origin}"
    head = (f"# {mix.name}: {where}, resolved (defaults, per-model tables and flags applied).\n"
            "# Paste it into your config file (`moa config path`) to make your own version.\n")
    return head + mix_to_toml(mix, source=data.get("source"))
