"""The `nettrain` console script and `python -m nettrain`.

The SIGINT/SIGTERM handlers go in before anything slow is imported (Typer, TensorFlow), so a
signal during start-up ends with exit 130 like any other interrupt, never a kill by signal.
"""

import os
import sys


def main() -> None:
    from nettrain.store import guard

    guard.install()
    try:
        from nettrain.cli import main as cli_main

        cli_main()
    except KeyboardInterrupt:  # before Typer took over
        sys.stderr.write("interrupted\n")
        sys.exit(guard.EXIT_INTERRUPTED)
    finally:
        try:
            if sys.stdout is not None:  # None when the command started with stdout closed
                sys.stdout.flush()
        except (BrokenPipeError, ValueError):  # the reader went away (`| head`): no "Exception ignored" at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


if __name__ == "__main__":
    main()
