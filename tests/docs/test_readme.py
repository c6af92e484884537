"""The README documents every command and every option (as sqlite-utils' test_docs does), and links the architecture."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from crmsync.cli import cli

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
COMMANDS = sorted(cli.commands)


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_is_in_the_readme(name: str) -> None:
    assert f"crmsync {name}" in README


@pytest.mark.parametrize(
    ("name", "option"),
    [
        (name, option)
        for name in COMMANDS
        for param in cli.commands[name].params
        if isinstance(param, click.Option)
        for option in param.opts
        if option.startswith("--") and option != "--help"
    ],
)
def test_every_option_is_in_the_readme(name: str, option: str) -> None:
    assert option in README, f"crmsync {name} {option}"


def test_the_readme_links_the_architecture() -> None:
    assert "(ARCHITECTURE.md)" in README
    assert (ROOT / "ARCHITECTURE.md").is_file()
