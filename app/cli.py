"""`affect-monitor`: the desktop app, and its headless subcommands.

    affect-monitor [--camera N | --video FILE] [--mic N | --audio FILE] [--model M] ...
    affect-monitor analyze | record | repair | export ...

`affect-monitor --help` lists the window's options and the subcommands; each subcommand
has its own `--help`.
"""
from __future__ import annotations

import sys

SUBCOMMANDS = {
    # name -> ("module:function" taking argv, one line for `affect-monitor --help`); the
    # module is imported lazily, so `--help` stays fast and a missing optional dependency
    # only affects the subcommand that needs it.
    "analyze": ("app.study.cli:main", "arousal and valence every 40 ms for files, folders or a whole study"),
    "record": ("app.recording.record:main", "record a session folder without a window"),
    "repair": ("app.recording.repair:main", "make an interrupted session folder whole"),
    "export": ("app.recording.export:main", "export a session for ELAN, BIDS or CARMA/DARMA"),
}


def subcommand_list() -> str:
    lines = [f"  {name:<10}{summary}" for name, (_, summary) in SUBCOMMANDS.items()]
    return ("commands without a window (`affect-monitor COMMAND --help` for their options):\n"
            + "\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in SUBCOMMANDS:
        module_name, function_name = SUBCOMMANDS[argv[0]][0].split(":")
        try:
            module = __import__(module_name, fromlist=[function_name])
        except ModuleNotFoundError as error:
            print(f"affect-monitor {argv[0]} is not available in this build ({error}).",
                  file=sys.stderr)
            return 2
        return getattr(module, function_name)(argv[1:])
    if "-h" in argv or "--help" in argv:
        from app.gui.main import build_parser  # argparse only: no Qt for --help

        build_parser(epilog=subcommand_list()).print_help()
        return 0
    # No subcommand: the desktop window (flags --camera/--video, --mic/--audio, --model).
    try:
        import PySide6.QtWidgets  # noqa: F401  (fails here, clearly, without Qt's libraries)

        from app.gui.main import run_gui
    except ImportError as error:  # PySide6/pyqtgraph missing or their system libraries
        print(f"affect-monitor: the desktop window cannot start ({error}); "
              "`affect-monitor analyze FILE... --out DIR` still works.", file=sys.stderr)
        return 2
    return run_gui(argv)


if __name__ == "__main__":
    sys.exit(main())
