"""``python -m aggregator`` and the ``aggregator`` command."""

import sys


def run() -> None:
    try:
        from .cli import main
    except KeyboardInterrupt:  # Ctrl-C while the modules load: quiet, like Ctrl-C anywhere else
        sys.exit(130)
    sys.exit(main())


if __name__ == "__main__":
    run()
