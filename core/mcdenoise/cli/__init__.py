"""``mcdenoise <verb>``: one module per verb, each with ``add_arguments(parser)`` and ``main(args)``.

Verb modules are imported only when their verb runs, so ``mcdenoise denoise`` never pays for
Blender or matplotlib imports and ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import signal
import sys
import threading
from collections.abc import Iterator

from mcdenoise import __version__
from mcdenoise.cli import usage
from mcdenoise.errors import McDenoiseError

# Verbs that run our networks on the CPU for a whole process (see inference.allocator);
# render-dataset is Blender's process and keeps Blender's allocator settings.
TUNED_ALLOCATOR_VERBS = {"denoise", "eval-dncnn", "train", "train-temporal", "bench"}

# verb -> (module, one-line help). Order is the order shown in --help.
VERBS: dict[str, tuple[str, str]] = {
    "denoise": ("mcdenoise.cli.denoise", "denoise EXR frames and write a Denoised pass"),
    "compare": ("mcdenoise.cli.compare", "score EXR renders against a reference (PSNR, SSIM, relMSE, FLIP)"),
    "eval-dncnn": ("mcdenoise.cli.eval_dncnn", "check DnCNN against the paper's BSD68 table"),
    "render-dataset": ("mcdenoise.cli.render_dataset", "render training pairs with Cycles (needs bpy)"),
    "render-suite": ("mcdenoise.cli.render_suite", "render the benchmark suite's hand-built scenes (needs bpy)"),
    "train": ("mcdenoise.cli.train", "train a denoiser on a rendered dataset"),
    "train-prefilter": ("mcdenoise.cli.train_prefilter", "train the aux prefilter (albedo/normal cleaned before the colour model)"),
    "train-temporal": ("mcdenoise.cli.train_temporal", "train the learned temporal blend on rendered sequences"),
    "finetune": ("mcdenoise.cli.finetune", "tune the shipped model on your own shot in a few minutes (needs bpy for a .blend)"),
    "recipe": ("mcdenoise.cli.recipe", "rebuild a shipped weights file by its recipe: render its data, train its stages"),
    "bench": ("mcdenoise.cli.bench", "quality/speed benchmark against OIDN"),
}


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    raw = argparse.RawDescriptionHelpFormatter  # descriptions and examples (cli/usage.py) keep their lines
    parser = argparse.ArgumentParser(prog="mcdenoise", description=usage.DESCRIPTION,
                                     epilog=usage.epilog(usage.OVERVIEW), formatter_class=raw)
    parser.add_argument("--version", action="version", version=f"mcdenoise {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", required=True)
    # Only the verb being run is imported; the others get a bare parser for --help listing.
    wanted = next((a for a in argv if a in VERBS), None)
    for verb, (module_name, help_text) in VERBS.items():
        p = sub.add_parser(verb, help=help_text, description=help_text,
                           epilog=usage.epilog(usage.EXAMPLES.get(verb, ())), formatter_class=raw)
        if verb == wanted:
            module = importlib.import_module(module_name)
            module.add_arguments(p)
            p.set_defaults(_main=module.main)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM (how farm managers and ``kill`` cancel a job), raised where Ctrl-C would be so
    that it unwinds the same way: frames written so far stay, the frame in flight is not
    written, temp files go."""


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """For the block, SIGTERM raises :class:`Terminated` in the main thread (Python's default
    is to die at once, leaving temps and no message); the previous handler comes back after."""
    if threading.current_thread() is not threading.main_thread():  # signals go to the main thread only
        yield
        return

    def terminate(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    if args.verb in TUNED_ALLOCATOR_VERBS:
        from mcdenoise.inference.allocator import keep_freed_memory

        keep_freed_memory()
    try:
        with _sigterm_interrupts():
            return int(args._main(args) or 0)
    except McDenoiseError as exc:
        from mcdenoise.cli import wording

        # A JSON line when a front end that words the fix itself asked for it (the add-on's worker).
        print(wording.error_line(args.verb, wording.describer()(exc)), file=sys.stderr)
        return 2
    except Terminated:
        print(f"mcdenoise {args.verb}: terminated (SIGTERM)", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print(f"mcdenoise {args.verb}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
