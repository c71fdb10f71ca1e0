"""The `gsid` command line: data, bench, demo, semantic IDs, index, search, train, serve.

Every subcommand is a thin layer over the Python API; see README "CLI reference".
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
import traceback

from gsid.cli import bench, data, ids, index, serve
from gsid.errors import GsidError

log = logging.getLogger("gsid")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="gsid", description=__doc__.splitlines()[0])
    p.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)"
    )
    p.add_argument(
        "--no-progress",
        dest="progress",
        action="store_const",
        const=False,
        default=None,
        help="never show progress bars (default: shown on a terminal)",
    )
    p.add_argument(
        "--no-verify",
        action="store_true",
        help="skip the checksum check of loaded artifacts (very large indexes; GSID_VERIFY=0)",
    )
    sub = p.add_subparsers(dest="command", required=True)

    data.add_parsers(sub)
    bench.add_parsers(sub)
    ids.add_parsers(sub)
    index.add_parsers(sub)
    serve.add_parsers(sub)
    return p


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (the usage stays in --help)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _Terminated(BaseException):
    """SIGTERM, raised like Ctrl-C so that every `with` block cleans up its temporaries."""


def _on_sigterm(signum, frame):
    # Python runs the handler at whatever bytecode the main thread is at; inside a finaliser
    # (__del__, run by the garbage collector anywhere) a raised exception is printed and
    # dropped, and the process would go on as if never signalled: deliver it again shortly
    f = frame
    while f is not None:
        if f.f_code.co_name == "__del__":
            threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGTERM)).start()
            return
        f = f.f_back
    raise _Terminated


def _fail(error: BaseException, message: str, verbose: int) -> None:
    if verbose:
        traceback.print_exc()
    notes = "".join(f" ({n})" for n in getattr(error, "__notes__", ()))
    print(f"gsid: error: {message}{notes}", file=sys.stderr)


def _configure(args: argparse.Namespace) -> None:
    """Logging, progress and verification as the global flags say."""
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.verbose < 2:  # bm25s sets its own logger to DEBUG when imported
        for handler in logging.getLogger().handlers:
            handler.addFilter(
                lambda r: not (r.name.startswith("bm25s") and r.levelno < logging.WARNING)
            )
    if args.progress is False:
        os.environ["GSID_NO_PROGRESS"] = "1"
    if args.progress is False or not sys.stderr.isatty():
        # Hugging Face libraries draw their own bars ("Loading weights") and load reports.
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if args.verbose == 0:
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    if args.no_verify:
        os.environ["GSID_VERIFY"] = "0"


def _exit_code(e: BaseException, verbose: int) -> int:
    """One line on stderr for what went wrong, and the exit code that says which kind."""
    if isinstance(e, BrokenPipeError):  # `gsid ... | head`: the reader left; say nothing more
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    if isinstance(e, KeyboardInterrupt):
        print("gsid: interrupted", file=sys.stderr)
        return 130
    if isinstance(e, _Terminated):
        print("gsid: terminated", file=sys.stderr)
        return 143
    if isinstance(e, GsidError | ValueError):  # ours, and the library's argument checks
        _fail(e, str(e), verbose)
        return 2
    if isinstance(e, OSError):  # a path the user gave: missing, a directory, not permitted
        where = f": {e.filename}" if e.filename else ""
        _fail(e, f"{e.strerror or e}{where}", verbose)
        return 2
    if verbose:
        traceback.print_exc()
    print(
        f"gsid: internal error: {type(e).__name__}: {e} (rerun with -v for the traceback and "
        f"report it)",
        file=sys.stderr,
    )
    return 1


def main(argv: list[str] | None = None) -> int:
    """Exit codes: 0 ok; 2 a user's mistake (one line on stderr, -v adds the traceback);
    1 an internal error; 130 interrupted; 141 output pipe closed; 143 terminated."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, or a one-line usage error (exit 2)
        return int(e.code or 0)
    _configure(args)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return args.func(args)
    except (Exception, KeyboardInterrupt, _Terminated) as e:
        return _exit_code(e, args.verbose)
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
