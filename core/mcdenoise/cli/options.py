"""The options several verbs share, defined once so that one concept has one spelling in every
verb (the table is ``docs/cli.md``; ``tests/test_cli_vocabulary.py`` walks every parser):

=================  ==========================================================================
``--device``       the torch device a network runs on (``auto``, ``cpu``, ``cuda[:N]``)
``--render-device``  where Blender's Cycles renders (``cpu``, ``gpu``)
``--quality``      model size: one tier, or a comma-separated list where a verb takes several
``--precision``    compute precision of our networks
``-q/--quiet``     no progress bar or per-item lines
``-v/--verbose``   more lines
``--out``          the folder a verb writes into (created if missing)
``-o/--output``    the one file a verb writes
=================  ==========================================================================

A spelling that is replaced stays for one release as a hidden alias (:func:`add_alias`): it
parses to the same value, is left out of ``--help``, and prints a one-line note on stderr.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

from mcdenoise.choices import (
    CYCLES_DEVICES,
    DEFAULT_CYCLES_DEVICE,
    DEFAULT_PRECISION,
    PRECISIONS,
    QUALITIES,
    TORCH_DEVICES,
    indexed_devices,
    spoken,
)
from mcdenoise.cli.argtypes import names, torch_device

Container = argparse.ArgumentParser | argparse._ArgumentGroup  # add_argument_group returns the latter


def add_alias(container: Container, old: str, action: argparse.Action) -> argparse.Action:
    """Keep ``old`` working as another spelling of ``action`` for one release: same ``dest``,
    same type and choices, hidden from ``--help``, a deprecation note on stderr when used."""
    new = max(action.option_strings, key=len)

    class Deprecated(type(action)):
        def __call__(self, parser, namespace, values, option_string=None):
            print(f"{parser.prog}: note: {old} is deprecated and will be removed in the next release; use {new}",
                  file=sys.stderr)
            super().__call__(parser, namespace, values, option_string)

    alias = copy.copy(action)
    alias.__class__ = Deprecated
    alias.option_strings = [old]
    alias.help = argparse.SUPPRESS
    alias.default = argparse.SUPPRESS  # the new spelling's default stands
    alias.required = False
    return container._add_action(alias)  # what add_argument does once it has built an action


def _with_aliases(container: Container, action: argparse.Action, old: tuple[str, ...]) -> argparse.Action:
    for spelling in old:
        add_alias(container, spelling, action)
    return action


def add_device(container: Container, *, default: str | None, help_default: str | None = None,
               help: str | None = None, whole: bool = False, old: tuple[str, ...] = ()) -> argparse.Action:
    """``--device``: where our networks run; ``whole`` offers only the names of TORCH_DEVICES,
    no ``cuda:N`` / ``xpu:N`` (``bench --speed`` times a kind of device)."""
    shown = help_default or "%(default)s"
    kind = {"choices": TORCH_DEVICES} if whole else {"type": torch_device}
    action = container.add_argument("--device", default=default, **kind,
                                    help=help or f"{spoken(TORCH_DEVICES)}; {indexed_devices()} picks one GPU (default: {shown})")
    return _with_aliases(container, action, old)


def add_render_device(container: Container, *, old: tuple[str, ...] = ("--device",)) -> argparse.Action:
    """``--render-device``: where Blender's Cycles renders (not a torch device)."""
    action = container.add_argument("--render-device", choices=CYCLES_DEVICES, default=DEFAULT_CYCLES_DEVICE,
                                    help="where Cycles renders: %(choices)s (default: %(default)s)")
    return _with_aliases(container, action, old)


def add_quality(container: Container, *, many: bool = False, default=None, help: str, dest: str | None = None,
                choices: tuple[str, ...] = QUALITIES, old: tuple[str, ...] = ()) -> argparse.Action:
    """``--quality``: one model size, or with ``many`` a comma-separated list of them. ``train``
    offers the U-Net width rows, which bear the tiers' names."""
    kwargs = {"dest": dest} if dest else {}
    if many:
        action = container.add_argument("--quality", type=names(choices, "quality"), default=default,
                                        metavar="Q[,Q...]", help=help, **kwargs)
    else:
        action = container.add_argument("--quality", choices=choices, default=default, help=help, **kwargs)
    return _with_aliases(container, action, old)


def add_precision(container: Container, *, help: str, old: tuple[str, ...] = ()) -> argparse.Action:
    """``--precision``: the compute precision our networks run at."""
    action = container.add_argument("--precision", choices=PRECISIONS, default=DEFAULT_PRECISION, help=help)
    return _with_aliases(container, action, old)


def add_quiet(container: Container, *, help: str, dest: str = "quiet", old: tuple[str, ...] = ()) -> argparse.Action:
    """``-q/--quiet``. ``dest`` other than ``quiet`` stores False into it instead of True
    (``train`` keeps its config key ``progress``)."""
    if dest == "quiet":
        action = container.add_argument("-q", "--quiet", action="store_true", help=help)
    else:
        action = container.add_argument("-q", "--quiet", dest=dest, action="store_const", const=False, help=help)
    return _with_aliases(container, action, old)


def add_verbose(container: Container, *, help: str) -> argparse.Action:
    """``-v/--verbose``."""
    return container.add_argument("-v", "--verbose", action="store_true", help=help)


def add_out(container: Container, *, help: str, dest: str = "out", default=None, required: bool = False,
            type=Path, old: tuple[str, ...] = ()) -> argparse.Action:
    """``--out DIR``: the folder a verb writes into."""
    action = container.add_argument("--out", dest=dest, type=type, default=default, required=required,
                                    metavar="DIR", help=help)
    return _with_aliases(container, action, old)


def add_output(container: Container, *, help: str) -> argparse.Action:
    """``-o/--output FILE``: the one file a verb writes."""
    return container.add_argument("-o", "--output", type=Path, metavar="FILE", help=help)
