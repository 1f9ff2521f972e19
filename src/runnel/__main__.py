"""``python -m runnel``: the command line interface."""

from runnel.entrypoints.cli import main

if __name__ == "__main__":
    main()
