"""The one flag parser every Python entry point uses: a config dataclass becomes its command line.

Built on ``transformers.HfArgumentParser`` (the training stages also take ``TrainingArguments`` from it),
so every entry point behaves the same way:

- ``save_every`` is ``--save-every``; the underscore spelling ``--save_every`` is accepted too, and so are
  the older names a field lists in ``metadata["aliases"]``.
- booleans: ``--flag`` or ``--flag true|false``; a flag that defaults to true also gets ``--no-flag``.
- an optional number (``int | None``, ``float | None``) takes ``none`` to mean unset.
- ``list[...]`` fields take several values (``arg(repeat=True)``: the flag may also be repeated); ``Literal`` fields or ``metadata["choices"]`` limit the values.
- help text is ``metadata["help"]``; a config's ``__post_init__`` checks (``spa_rl.validate``) turn into
  one line naming the refused flag and exit status 1, not argparse's usage text.

Use ``arg(...)`` to declare a field with its help, and ``parse(Config, ...)`` in ``main``.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from spa_rl.validate import choice, exit_on_error, flag

T = TypeVar("T")
_NONE_WORDS = ("none", "null")


def arg(
    default: Any = dataclasses.MISSING,
    help: str = "",  # noqa: A002 - argparse's own name for it
    *,
    aliases: Sequence[str] = (),
    choices: Sequence[Any] | None = None,
    repeat: bool = False,
    default_factory: Callable[[], Any] | Any = dataclasses.MISSING,
) -> Any:
    """A config field with its help text (and older flag names or allowed values). ``repeat``: a list
    field whose flag may be given several times (``--run-dir A --run-dir B``, or ``--run-dir A B``)."""
    meta: dict[str, Any] = {"help": help.replace("%", "%%")}  # argparse formats help with %
    if repeat:
        meta["action"] = "extend"  # a plain list field would keep only the last occurrence
    if aliases:
        meta["aliases"] = list(aliases)
    if choices is not None:
        meta["choices"] = list(choices)
    return dataclasses.field(default=default, default_factory=default_factory, metadata=meta)


def _optional_fields(config: type) -> set[str]:
    """Fields typed ``int | None`` or ``float | None`` (HfArgumentParser parses those as plain numbers); a
    string field keeps the word, which can be a real value (``--report-to none``)."""
    out = set()
    for name, hint in typing.get_type_hints(config).items():
        args = typing.get_args(hint)
        is_union = typing.get_origin(hint) in (typing.Union, types.UnionType)
        if is_union and type(None) in args and set(args) - {type(None)} <= {int, float}:
            out.add(name)
    return out


def _none_or(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse_value(text: str) -> Any:
        return None if text.strip().lower() in _NONE_WORDS else convert(text)

    return parse_value


def build_parser(*configs: type, doc: str | None = None, **defaults: Any) -> argparse.ArgumentParser:
    """The parser for these config dataclasses; ``defaults`` replace field defaults (a recipe that
    reuses another's config with its own defaults, e.g. exploration over evaluation's)."""
    from transformers import HfArgumentParser  # 1 s import, paid only by entry points

    parser = HfArgumentParser(configs, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    optional = set().union(*(_optional_fields(c) for c in configs))
    for action in parser._actions:
        if action.choices is not None and action.dest in _choices(configs):
            # Checked in parse() by validate.choice, so a refused value reads the same from the command line
            # and from code; usage still lists them.
            action.metavar = "{" + ",".join(map(str, action.choices)) + "}"
            action.choices = None
        action.option_strings.sort(key=lambda s: "_" in s)  # usage and help show --save-every first
        if action.dest in optional and action.type is not None:
            action.type = _none_or(action.type)
        if action.dest in defaults:
            action.default = defaults[action.dest]
            action.required = False
        if action.help and action.default not in (None, dataclasses.MISSING, argparse.SUPPRESS):
            if "(default" not in action.help and action.nargs != 0:
                action.help += f" (default: {str(action.default).replace('%', '%%')})"
    return parser


def parse(*configs: type, argv: Sequence[str] | None = None, doc: str | None = None, **defaults: Any) -> Any:
    """Parse ``argv`` (default: the command line) into one instance of each config, in order; one config
    returns the instance itself. Unknown flags stop with argparse's usage message (exit status 2); a
    value refused by a config's checks stops with that one line (exit status 1)."""
    parser = build_parser(*configs, doc=doc, **defaults)
    ns, rest = parser.parse_known_args(args=argv)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    objs = []
    with exit_on_error():
        for name, allowed in _choices(configs).items():
            if getattr(ns, name) is not None:
                choice(flag(name), getattr(ns, name), allowed)
        for config in configs:
            objs.append(config(**{f.name: getattr(ns, f.name) for f in dataclasses.fields(config) if f.init}))
    return objs[0] if len(objs) == 1 else tuple(objs)


def _choices(configs: Sequence[type]) -> dict[str, list[Any]]:
    """Fields declared with ``arg(choices=...)``."""
    return {
        f.name: f.metadata["choices"]
        for c in configs
        for f in dataclasses.fields(c)
        if "choices" in f.metadata
    }
