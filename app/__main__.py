"""``python -m app``: the same command line as ``synflow``."""

from app.cli.main import main

main()
