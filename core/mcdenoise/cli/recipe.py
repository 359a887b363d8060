"""``mcdenoise recipe``: rebuild a shipped weights file from a fresh clone, by its recipe.

    mcdenoise recipe recipes/balanced.toml --dry-run
    mcdenoise recipe recipes/balanced.toml --minutes 170

Renders the recipe's datasets, trains its stages in order and writes the weights
(``mcdenoise.training.recipe``). Re-running the same command continues where it stopped.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mcdenoise.cli import options
from mcdenoise.cli.argtypes import at_least


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", type=Path, help="recipe file (TOML), e.g. recipes/balanced.toml")
    parser.add_argument("--work", type=Path, help="run folders and stage weights (default runs/recipe-NAME)")
    parser.add_argument("--data-root", type=Path, default=Path("data"),
                        help="where the datasets are rendered, one folder per dataset name (default data/)")
    options.add_output(parser, help="where the finished weights go (default WORK/<the recipe's weights name>)")
    parser.add_argument("--minutes", type=at_least(0), default=0,
                        help="wall-clock budget of this call (0 = run to the end); re-run to continue")
    options.add_device(parser, default=None, help_default="the recipe's")
    options.add_render_device(parser, old=())
    parser.add_argument("--only", choices=("all", "data", "train"), default="all",
                        help="render the datasets only, train only (datasets already rendered), or both (default)")
    parser.add_argument("--dry-run", action="store_true", help="print where each step stands and exit")
    options.add_quiet(parser, help="no progress bars (for logs)")


def main(args: argparse.Namespace) -> int:
    from mcdenoise.training import recipe as recipe_mod

    recipe = recipe_mod.load_recipe(args.recipe)
    work = args.work or Path("runs") / f"recipe-{recipe.name}"
    layout = recipe_mod.Layout(work, args.data_root)
    for line in recipe_mod.describe(recipe, layout):
        print(line)
    if args.dry_run:
        return 0
    result = recipe_mod.run(recipe, work, data_root=args.data_root, out=args.output, minutes=args.minutes,
                            device=args.device, render_device=args.render_device, only=args.only,
                            progress=not args.quiet, log=lambda m: print(m, flush=True))
    return 0 if result is not None or args.only == "data" else 3
