"""python -m memhound: the command-line interface (see memhound.cli)."""

from memhound.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
