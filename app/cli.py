"""`affect-monitor`: the desktop app, and its headless subcommands.

    affect-monitor [--camera N | --video FILE] [--mic N | --audio FILE] [--model M]
    affect-monitor analyze FILE... --out DIR [--model M]
"""
from __future__ import annotations

import sys

SUBCOMMANDS = {
    # name -> "module:function" taking argv; imported lazily so `--help` stays fast and a
    # missing optional dependency only affects the subcommand that needs it.
    "analyze": "app.analyze:main",
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
    print("affect-monitor: the desktop window is not built yet (tracked in the desktop-app "
          "issue); use `affect-monitor analyze FILE... --out DIR` meanwhile.", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
