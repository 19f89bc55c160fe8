"""`python -m cnncli.cli`: the same as the `cnncli` command."""

from cnncli.cli import main

main()
