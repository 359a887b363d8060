"""What a newcomer reads first: `mcdenoise --help`, every verb's --help and --version. Each help
ends with real examples, and every example parses with the real parser."""

from __future__ import annotations

import importlib.metadata
import shlex
import subprocess
import sys

import pytest

from mcdenoise import __version__
from mcdenoise.cli import VERBS, build_parser, main, usage


def help_text(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 0
    return capsys.readouterr().out


def examples_section(text: str) -> list[str]:
    assert "\nexamples:\n" in text, text
    return [line.strip() for line in text.split("\nexamples:\n", 1)[1].splitlines()]


@pytest.mark.parametrize("verb", list(VERBS))
def test_every_verb_help_ends_with_examples(verb, capsys):
    lines = examples_section(help_text([verb, "--help"], capsys))
    runs = [line for line in lines if line.startswith(f"mcdenoise {verb} ")]
    assert len(runs) >= 2, f"add at least two examples of 'mcdenoise {verb}' to mcdenoise/cli/usage.py"
    assert all(line.startswith(("#", "mcdenoise ")) for line in lines if line)


def test_program_help_is_for_users(capsys):
    text = help_text(["--help"], capsys)
    assert "learned denoiser for path-traced" in text
    assert "add_arguments" not in text and "one module per verb" not in text
    assert sum(line.startswith("mcdenoise ") for line in examples_section(text)) >= 2
    for verb in VERBS:
        assert f"    {verb}" in text


def all_examples() -> list[str]:
    return [cmd for _, cmd in usage.OVERVIEW] + [cmd for examples in usage.EXAMPLES.values() for _, cmd in examples]


@pytest.mark.parametrize("command", all_examples())
def test_every_example_parses_and_names_shipped_files(command, repo_root):
    """A renamed flag or choice, or a moved shipped file, breaks the example here first."""
    argv = shlex.split(command)
    assert argv[0] == "mcdenoise" and argv[1] in VERBS, command
    if "--help" not in argv:
        build_parser(argv[1:]).parse_args(argv[1:])
    for arg in argv:
        if arg.startswith(("examples/", "core/")):
            assert (repo_root / arg).is_file(), f"{command}: {arg} is not in the repository"


def test_version(capsys):
    assert help_text(["--version"], capsys) == f"mcdenoise {__version__}\n"
    assert __version__ == importlib.metadata.version("mcdenoise")  # pyproject.toml and the package agree


def test_version_through_the_real_entry_point():
    run = subprocess.run([sys.executable, "-m", "mcdenoise", "--version"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and run.stdout == f"mcdenoise {__version__}\n"
