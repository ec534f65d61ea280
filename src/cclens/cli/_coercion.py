"""Plain coercion of simple command-line values, so a command starts without importing pydantic.

Typer (0.29) coerces every parameter value through a pydantic ``TypeAdapter``; importing pydantic and
building the adapters costs ~0.1 s, more than the rest of a warm ``cclens report daily``. For the
plain types most options use (``str``, ``Path``, a ``str`` Enum, ``int``, ``bool``, and ``X | None`` of those)
the conversion is trivial, so :func:`lighten` gives those parameters a converter that does it
directly. A value it does not convert exactly as Typer would (an Enum value in another case, an int
with an underscore, …) is handed to Typer's own converter, so errors and edge cases read exactly as
before. If Typer's internals change shape, :func:`lighten` does nothing and Typer works as usual.
"""

from __future__ import annotations

import enum
import types
import typing
from pathlib import Path
from typing import Any

_SIMPLE = (str, Path, int, bool)


def _plain_type(annotation: Any) -> Any:
    """``annotation`` if it is simple (or ``X | None`` of a simple X), else None."""
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) != 1:
            return None
        annotation = args[0]
    if annotation in _SIMPLE:
        return annotation
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum) and issubclass(annotation, str):
        return annotation
    return None


class _PlainRuntimeParam:
    """Stands in for Typer's runtime param of one parameter (same ``coerce`` signature)."""

    __slots__ = ("kind",)

    def __init__(self, kind: Any):
        self.kind = kind

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        if value is None and not (param.multiple or param.nargs == -1):
            return None
        kind = self.kind
        if isinstance(value, str) and not (param.multiple or param.nargs == -1):
            if kind is str:
                return value
            if kind is Path and _readable_or_missing(value):
                return Path(value)
            if kind is int and value.isascii() and value.lstrip("-").isdigit():
                return int(value)
            if kind not in _SIMPLE and ctx.token_normalize_func is None and value in kind._value2member_map_:
                return kind._value2member_map_[value]
        elif isinstance(value, kind) and (kind is bool or not isinstance(value, bool)):
            return value  # a default of the right type
        # Anything else: Typer's own coercion (pydantic), with its own messages.
        from typer._coercion import build_runtime_param

        param._runtime_param = build_runtime_param(param.type_descriptor)
        return param._runtime_param.coerce(value, param=param, ctx=ctx)


def _readable_or_missing(value: str) -> bool:
    """Typer's Path check with default options: a path that exists must be readable."""
    import os

    try:
        os.stat(value)
    except (OSError, ValueError):
        return True
    return os.access(value, os.R_OK)


def _plain_options(info: Any) -> bool:
    """No parser, range, or path option that makes Typer's coercion do more than convert."""
    return (info.parser is None and info.min is None and info.max is None and not info.exists
            and info.file_okay and info.dir_okay and not info.writable and not info.resolve_path
            and not info.allow_dash and info.path_type is None)


def _lighten_param(param: Any) -> None:
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is None or getattr(param, "_runtime_param", 0) is not None or descriptor.is_file:
        return
    if param.multiple or param.nargs != 1 or not _plain_options(descriptor.parameter_info):
        return
    kind = _plain_type(descriptor.annotation)
    if kind is not None:
        param._runtime_param = _PlainRuntimeParam(kind)


def lighten(command: Any) -> Any:
    """Give the simple parameters of ``command`` and of all its sub-commands (their ``--help`` too)
    the plain converter. Returns ``command``."""
    stack = [command]
    while stack:
        cmd = stack.pop()
        stack.extend((getattr(cmd, "commands", None) or {}).values())
        for param in getattr(cmd, "params", ()):
            _lighten_param(param)
        get_help_option = getattr(cmd, "get_help_option", None)
        if get_help_option is not None:  # click makes the help option on first use
            cmd.get_help_option = _lightened_help(get_help_option)
    return command


def _lightened_help(get_help_option: Any) -> Any:
    def wrapper(ctx: Any) -> Any:
        option = get_help_option(ctx)
        if option is not None:
            _lighten_param(option)
        return option

    return wrapper
