"""``crmsync``: the command line. Each command is a thin shell over one library call."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="crmsync", prog_name="crmsync")
def main() -> None:
    """Keep a CRM's customers and a Helcim account in sync, and report on payment methods.

    Exit codes: 0 success, 1 partial (some rows rejected or failed), 2 bad usage
    or bad input file, 3 could not reach or authenticate to the API.
    """
