"""`python -m vaelab` and the `vaelab` command: SIGTERM is handled as Ctrl+C from the first moment, so that either
gives one line and exit code 130 and every writer cleans up its temporaries. During the imports (torch's take
seconds) both signals are held back and delivered when they end: one raised inside the import machinery can be
swallowed by it ("Exception ignored in ...") and the command would go on.

Under `python -m`, CPython ends the process by SIGINT instead of its exit code when a KeyboardInterrupt last left code
compiled from a string (exec and eval: dataclasses and namedtuple make methods so, torch imports modules lazily that
use them), even one caught later; running a string to its end clears that mark."""

import signal
import sys

_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def run() -> None:
    signal.signal(signal.SIGTERM, _interrupt)
    hold = hasattr(signal, "pthread_sigmask")
    try:
        if hold:
            signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        from vaelab.cli import main

        if hold:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)  # a signal held back is raised here
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    try:
        main()
    except SystemExit as end:
        if end.code == 130:
            exec("")  # clears the mark of an interrupt caught after it left exec'd code (see above)
        raise


if __name__ == "__main__":
    run()
