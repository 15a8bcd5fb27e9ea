"""``python -m kmq``: the same as the ``kmq`` command."""

from kmq.cli import main

if __name__ == "__main__":
    main()
