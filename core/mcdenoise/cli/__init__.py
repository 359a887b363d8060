"""``mcdenoise <verb>``: one module per verb, each with ``add_arguments(parser)`` and ``main(args)``.

Verb modules are imported only when their verb runs, so ``mcdenoise denoise`` never pays for
Blender or matplotlib imports and ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from mcdenoise import __version__
from mcdenoise.errors import McDenoiseError

# Verbs that run our networks on the CPU for a whole process (see inference.keep_freed_memory);
# render-dataset is Blender's process and keeps Blender's allocator settings.
TUNED_ALLOCATOR_VERBS = {"denoise", "eval-dncnn", "train", "bench"}

# verb -> (module, one-line help). Order is the order shown in --help.
VERBS: dict[str, tuple[str, str]] = {
    "denoise": ("mcdenoise.cli.denoise", "denoise EXR frames and write a Denoised pass"),
    "eval-dncnn": ("mcdenoise.cli.eval_dncnn", "check DnCNN against the paper's BSD68 table"),
    "render-dataset": ("mcdenoise.cli.render_dataset", "render training pairs with Cycles (needs bpy)"),
    "train": ("mcdenoise.cli.train", "train a denoiser on a rendered dataset"),
    "bench": ("mcdenoise.cli.bench", "quality/speed benchmark against OIDN"),
}


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mcdenoise", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"mcdenoise {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    # Only the verb being run is imported; the others get a bare parser for --help listing.
    wanted = next((a for a in argv if a in VERBS), None)
    for verb, (module_name, help_text) in VERBS.items():
        p = sub.add_parser(verb, help=help_text, description=help_text)
        if verb == wanted:
            module = importlib.import_module(module_name)
            module.add_arguments(p)
            p.set_defaults(_main=module.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    if args.verb in TUNED_ALLOCATOR_VERBS:
        from mcdenoise.inference.runtime import keep_freed_memory

        keep_freed_memory()
    try:
        return int(args._main(args) or 0)
    except McDenoiseError as exc:
        print(f"mcdenoise {args.verb}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mcdenoise {args.verb}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
