"""Every `affect-monitor` command's --help lists every option it accepts, each with a
line saying what it does; `affect-monitor --help` shows the window's own options and the
subcommands (and stays fast: no Qt import).

The parsers are the real ones, caught as the command formats its help; the text checked
is what the command printed.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import pytest

from app import cli

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ["", *cli.SUBCOMMANDS]  # "": the window


def parser_of(main, argv: list[str], monkeypatch) -> argparse.ArgumentParser:
    """The one parser ``main(argv)`` formats its --help with (it must exit 0)."""
    parsers = []
    format_help = argparse.ArgumentParser.format_help

    def catching(parser):
        parsers.append(parser)
        return format_help(parser)

    monkeypatch.setattr(argparse.ArgumentParser, "format_help", catching)
    try:
        status = main(argv)
    except SystemExit as done:  # argparse's own --help exits
        status = done.code
    assert status in (0, None)
    assert len(parsers) == 1
    return parsers[0]


def help_of(command: str, capsys, monkeypatch) -> tuple[argparse.ArgumentParser, str]:
    """(the parser, the printed text) of `affect-monitor [command] --help`."""
    parser = parser_of(cli.main, ([command] if command else []) + ["--help"], monkeypatch)
    return parser, capsys.readouterr().out


def one_line(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c or "window")
def test_help_lists_every_option_with_what_it_does(command, capsys, monkeypatch):
    parser, printed = help_of(command, capsys, monkeypatch)
    printed_flat = one_line(printed)
    for action in parser._actions:
        assert action.help and action.help != argparse.SUPPRESS, (
            f"affect-monitor {command} --help: {action.option_strings or action.dest} "
            "has no description")
        name = action.option_strings[0] if action.option_strings else action.metavar
        entry = [line for line in printed.splitlines()
                 if line.strip().startswith(str(name)) and line.startswith("  ")]
        assert entry, f"{name} is not listed in `affect-monitor {command} --help`"
        # The description's opening words (before any %(default)s) are printed with it.
        words = []
        for word in action.help.split():
            if "%" in word:
                break
            words.append(word)
        assert one_line(" ".join(words[:4])) in printed_flat


def test_the_window_help_shows_its_own_options_and_the_subcommands(capsys, monkeypatch):
    _, printed = help_of("", capsys, monkeypatch)
    for option in ("--camera", "--video", "--mic", "--audio", "--model", "--quit-after",
                   "--screenshot", "--settings"):
        assert f"  {option} " in printed
    for name in cli.SUBCOMMANDS:
        assert f"\n  {name} " in printed


def test_window_help_needs_no_qt():
    code = ("import sys, app.cli; app.cli.main(['--help']); "
            "assert 'PySide6' not in sys.modules, 'imported Qt'")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "--quit-after" in result.stdout


def test_the_readme_uses_only_options_the_commands_have(capsys, monkeypatch):
    """Every `affect-monitor ...` line in the README's code blocks names real options."""
    readme = (ROOT / "README.md").read_text()
    blocks = "\n".join(re.findall(r"```bash\n(.*?)```", readme, re.S))
    lines = [line.split("#")[0] for line in blocks.splitlines()
             if re.match(r"(\.venv/bin/)?affect-monitor\b", line)]
    assert len(lines) >= 8
    options = {command: {o for a in help_of(command, capsys, monkeypatch)[0]._actions
                         for o in a.option_strings} for command in COMMANDS}
    for line in lines:
        words = line.split()
        command = words[1] if len(words) > 1 and words[1] in cli.SUBCOMMANDS else ""
        for flag in re.findall(r"(?<![\w-])--[a-z][a-z-]*", line):
            assert flag in options[command], f"README: `{line.strip()}`: no {flag}"


@pytest.mark.parametrize("module", ["training.train", "training.export", "training.evaluate"])
def test_training_commands_describe_every_option(module, capsys, monkeypatch):
    """affect-train, affect-export and affect-eval: every option says what it does in
    --help."""
    import importlib

    parser = parser_of(importlib.import_module(module).main, ["--help"], monkeypatch)
    missing = [action.option_strings or action.dest for action in parser._actions
               if not action.help or action.help == argparse.SUPPRESS]
    assert not missing, f"{module} --help: no description for {missing}"


def test_affect_train_lists_at_most_8_options(capsys, monkeypatch):
    """Everything else is in the recipe file: --config, --out, --init, --resume, --set."""
    from training.train import main

    parser = parser_of(main, ["--help"], monkeypatch)
    printed = capsys.readouterr().out
    options = [action.option_strings[0] for action in parser._actions]
    assert len(options) <= 8, options
    assert {"--config", "--out", "--init", "--resume", "--set"} <= set(options)
    assert all(f"  {option}" in printed for option in options)
