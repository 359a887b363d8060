"""Placeholder: filled in by the speed benchmark work (see the issue tracker)."""

import argparse

from mcdenoise.errors import McDenoiseError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def main(args: argparse.Namespace) -> None:
    raise McDenoiseError("the speed benchmark is not implemented yet")
