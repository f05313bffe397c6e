"""``python -m vzsql``: the command line."""

from vzsql.cli import main

main()
