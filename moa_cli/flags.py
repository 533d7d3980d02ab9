"""The typer options a command takes from the option table (config/options.py).

    @app.command()
    @table_options("ask")
    def ask(question: ..., overrides: Overrides, json_output: ... = False): ...

The command gets one flag per option of the table that names it, with the table's help, short
name and default; they reach it gathered into one `overrides` argument (an Overrides). A new
option in the table is a new flag of every command it names, with no edit here or in cli.py.
"""

from __future__ import annotations

import functools
import inspect
from typing import Annotated, Callable, List, Optional

import typer

from .config.options import FLAG_OPTIONS, Kind, Option


def table_options(command: str) -> Callable[[Callable], Callable]:
    """Give the decorated command the table's flags for `command`, passed as `overrides=`."""
    options = [o for o in FLAG_OPTIONS if command in o.commands]

    def decorate(fn: Callable) -> Callable:
        signature = inspect.signature(fn, eval_str=True)
        own = [p for p in signature.parameters.values() if p.name != "overrides"]
        taken = {p.name for p in own} & {o.name for o in options}
        if taken:
            raise TypeError(f"{fn.__name__}: {', '.join(sorted(taken))} come from the option table")
        arguments = [p for p in own if _is_argument(p)]
        table = [inspect.Parameter(o.name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=typer_type(o))
                 for o in options]
        rest = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own if not _is_argument(p)]
        parameters = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in arguments] + table + rest

        @functools.wraps(fn)
        def command_with_options(**values):
            from .config import Overrides

            given = {o.name: values.pop(o.name) for o in options}
            return fn(overrides=Overrides.from_flags(**given), **values)

        command_with_options.__signature__ = signature.replace(parameters=parameters)
        command_with_options.__annotations__ = {p.name: p.annotation for p in parameters}
        return command_with_options

    return decorate


def typer_type(option: Option):
    """The annotated type typer reads one option's flag from."""
    names = [f"{option.flag}/--no-{option.flag[2:]}" if option.kind is Kind.BOOL else option.flag]
    if option.short:
        names.append("-" + option.short)
    value_type = List[str] if option.kind is Kind.MODELS else option.kind.value
    return Annotated[Optional[value_type], typer.Option(*names, help=option.help_text(), show_default=False,
                                                       **_completion(option))]


def _completion(option: Option) -> dict:
    """Shell completion (and the placeholder --help shows) for the options that name mixes or models."""
    from .completion import complete_mix, complete_model

    if option.name == "mix":
        return {"autocompletion": complete_mix, "metavar": "NAME"}
    if option.kind is Kind.MODELS or option.name == "aggregator":
        return {"autocompletion": complete_model, "metavar": "MODEL"}
    return {}


def _is_argument(parameter: inspect.Parameter) -> bool:
    metadata = getattr(parameter.annotation, "__metadata__", ())
    return any(isinstance(m, typer.models.ArgumentInfo) for m in metadata)
