"""Typer options derived from the config dataclasses' fields, in one place.

`@config_command(app, parts=...)` turns a function `fn(cfg: RunConfig, **own)` into a Typer
command whose options are the command's own parameters plus one option per field of the named
config parts (flag, default and help from the field's metadata, see `config.opt`). The command
receives a validated `RunConfig`; it never repeats a config option.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable, Iterable
from typing import Annotated, Any

import typer

from ..config import RunConfig, config_parts, flag_of

# Config parts a command can take options from. "run" is RunConfig's own fields.
PART_NAMES = ("data", "models", "train", "selective", "run")


def _classes() -> dict[str, type]:
    return {**config_parts(), "run": RunConfig}


def _cli_type(f: dataclasses.Field[Any], hint: Any) -> Any:
    if f.metadata.get("parse") is not None:  # given as text on the command line
        return str | None if f.default is None else str
    return hint


def _cli_default(f: dataclasses.Field[Any]) -> Any:
    default = f.default if f.default is not dataclasses.MISSING else None
    if f.metadata.get("parse") is not None and default is not None:
        return ",".join(map(str, default)) if isinstance(default, tuple) else str(default)
    return default


def config_parameters(parts: Iterable[str], exclude: Iterable[str] = ()) -> list[inspect.Parameter]:
    """One keyword parameter (`Annotated[type, typer.Option(...)]`) per config field of `parts`."""
    classes, skip = _classes(), set(exclude)
    params = []
    for part in parts:
        klass = classes[part]
        hints = typing.get_type_hints(klass)
        for f in dataclasses.fields(klass):
            if not f.metadata.get("cli", False) or f.name in skip:
                continue
            names = [flag_of(f)] + ([f.metadata["short"]] if f.metadata.get("short") else [])
            typ = _cli_type(f, hints[f.name])
            ann = Annotated[typ, typer.Option(*names, help=f.metadata["help"], show_default=True)]
            params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=_cli_default(f),
                                            annotation=ann))
    return params


def config_option(klass: type, name: str, *, unset: bool = False) -> Any:
    """The command-line option of one config field (`Annotated[type, typer.Option(...)]`): its
    flag, short flag and help from the field. `unset=True`: the option defaults to None, so a
    command can tell a value given from one left out, and the help names the field's default."""
    f = next(f for f in dataclasses.fields(klass) if f.name == name)
    names = [flag_of(f)] + ([f.metadata["short"]] if f.metadata.get("short") else [])
    hint = typing.get_type_hints(klass)[f.name]
    if unset:
        return Annotated[hint | None, typer.Option(*names, help=f"{f.metadata['help']} [default: {f.default}]",
                                                   show_default=False)]
    return Annotated[hint, typer.Option(*names, help=f.metadata["help"])]


def _parsers(parts: Iterable[str]) -> dict[str, Callable[[str], Any]]:
    classes = _classes()
    return {f.name: f.metadata["parse"] for p in parts for f in dataclasses.fields(classes[p])
            if f.metadata.get("parse") is not None}


def build_config(flat: dict[str, Any], parts: Iterable[str] = PART_NAMES) -> RunConfig:
    """Command-line values (flat names) -> a validated RunConfig; text options parsed."""
    parsers = _parsers(parts)
    kw = {k: (parsers[k](v) if k in parsers and isinstance(v, str) else v) for k, v in flat.items()}
    if "out" in kw and kw["out"] is not None:
        kw["out"] = str(kw["out"])
    from ..experiment.checks import check_config  # the experiment half: only once a command runs

    return check_config(RunConfig.create(**kw))


def config_command(app: typer.Typer, *, name: str | None = None, parts: Iterable[str] = PART_NAMES,
                   exclude: Iterable[str] = (), fixed: dict[str, Any] | None = None,
                   ) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Register `fn(cfg, **own)` as a command with the config options of `parts` (minus
    `exclude`; `fixed` sets config values the command does not expose)."""
    parts = tuple(parts)

    def wrap(fn: Callable[..., None]) -> Callable[..., None]:
        own = [p for p in inspect.signature(fn, eval_str=True).parameters.values() if p.name != "cfg"]
        cfg_params = config_parameters(parts, exclude)
        own_names = {p.name for p in own}
        cfg_names = [p.name for p in cfg_params if p.name not in own_names]
        params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + \
            [p for p in cfg_params if p.name not in own_names]

        @functools.wraps(fn)
        def command(**kw: Any) -> None:
            flat = {k: kw.pop(k) for k in cfg_names}
            cfg = build_config({**flat, **(fixed or {})}, parts)
            fn(cfg, **kw)

        command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        del command.__wrapped__  # type: ignore[attr-defined]
        app.command(name or fn.__name__.replace("_", "-"))(command)
        return fn

    return wrap
