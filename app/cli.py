"""`affect-monitor`: the desktop app, and its headless subcommands.

    affect-monitor [--camera N | --video FILE] [--mic N | --audio FILE] [--model M]
    affect-monitor analyze FILE|FOLDER|MANIFEST.csv... --out DIR [--model M]
                           [--workers N | --cluster ADDRESS]
    affect-monitor record --out DIR [--camera N | --video FILE] [--mic N | --audio FILE]
                          [--seconds N] [--no-media] [--participant ID --session ID]
    affect-monitor repair DIR
    affect-monitor export DIR --to elan|bids|carma
"""
from __future__ import annotations

import sys

SUBCOMMANDS = {
    # name -> "module:function" taking argv; imported lazily so `--help` stays fast and a
    # missing optional dependency only affects the subcommand that needs it.
    "analyze": "app.study.cli:main",
    "record": "app.session.record:main",
    "repair": "app.session.repair:main",
    "export": "app.session.export:main",
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in SUBCOMMANDS:
        module_name, function_name = SUBCOMMANDS[argv[0]].split(":")
        try:
            module = __import__(module_name, fromlist=[function_name])
        except ModuleNotFoundError as error:
            print(f"affect-monitor {argv[0]} is not available in this build ({error}).",
                  file=sys.stderr)
            return 2
        return getattr(module, function_name)(argv[1:])
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
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
