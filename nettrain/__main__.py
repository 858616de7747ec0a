"""The `nettrain` console script and `python -m nettrain`.

The SIGINT/SIGTERM handlers go in before anything slow is imported (Typer, TensorFlow), so a
signal during start-up ends with exit 130 like any other interrupt, never a kill by signal, and
with the one line `interrupted` wherever it landed (Typer turns an interrupt that lands while it
parses the command line into a silent exit 130).
"""

import os
import sys


def main() -> None:
    from nettrain.store import guard

    guard.install()
    code = 0
    try:
        from nettrain.cli import main as cli_main

        cli_main()
    except SystemExit as e:
        code = e.code
    except KeyboardInterrupt:  # before Typer took over
        code = guard.EXIT_INTERRUPTED
    if code == guard.EXIT_INTERRUPTED and guard.interrupted() and not guard.told():
        sys.stderr.write("interrupted\n")
    if code == guard.EXIT_INTERRUPTED:
        guard.acknowledge()
        # CPython 3.11 marks a KeyboardInterrupt that left code run by exec() (a dataclass's generated
        # methods, while an import the signal cut defined one) as unhandled even though it was caught
        # here, and a `python -m nettrain` process then kills itself by SIGINT at exit (-2, not 130).
        # An exec() that completes clears the mark.
        exec("None")
    try:
        if sys.stdout is not None:  # None when the command started with stdout closed
            sys.stdout.flush()
    except (BrokenPipeError, ValueError):  # the reader went away (`| head`): no "Exception ignored" at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(code)


if __name__ == "__main__":
    main()
