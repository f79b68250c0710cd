"""The README as a newcomer meets it: a quick start first, commands that run as written as
root without sudo (CI runs the test command unchanged), and screenshots that exist, are
small and come from docs/screenshots.py."""
from __future__ import annotations

import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def sections() -> list[tuple[str, str]]:
    """(heading, body) of each '## ' section, in order."""
    parts = re.split(r"(?m)^## ", README)[1:]
    return [(part.split("\n", 1)[0], part.split("\n", 1)[1]) for part in parts]


def marked(name: str) -> str:
    found = re.search(rf"<!-- {name} -->\n```bash\n(.*?)\n```\n<!-- /{name} -->", README, re.S)
    assert found, f"no {name} between its markers"
    return found.group(1)


def test_the_readme_opens_with_a_quick_start_of_at_most_15_lines():
    heading, body = sections()[0]
    assert heading == "Quick start"
    lines = [line for line in body.splitlines() if line.strip()]
    assert len(lines) <= 15, len(lines)
    assert marked("app-command") in body  # install and open the window
    for step in ("affect-monitor record ", "affect-monitor analyze ", "affect-monitor export "):
        assert step in body
    assert README.index("## Quick start") < 600  # right under the title and one paragraph


def test_the_commands_need_no_sudo_and_ci_runs_the_test_command_unchanged():
    for name in ("app-command", "test-command"):
        command = marked(name)
        assert "\n" not in command
        assert not re.search(r"(^|[;&|(]\s*)sudo\b", command), command  # fails as root without sudo
        assert command.startswith("scripts/install-system-packages")
    assert os.access(ROOT / "scripts" / "install-system-packages", os.X_OK)
    ci = (ROOT / ".ci" / "run").read_text()
    assert "sudo" not in ci  # no shim: what CI proves is what a user runs
    assert "test-command" in ci


def test_the_default_model_section_is_one_section():
    headings = [heading for heading, _ in sections()]
    assert headings.count("The default model") == 1


def test_screenshots_exist_are_small_and_made_by_the_script():
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", README)
    assert {"docs/live-window.png", "docs/session-review.png"} <= set(images)
    script = (ROOT / "docs" / "screenshots.py").read_text()
    for image in images:
        path = ROOT / image
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", image
        assert path.stat().st_size < 300_000, f"{image}: keep screenshots under 300 KB"
        assert f'"{path.name}"' in script, f"{image} is not made by docs/screenshots.py"
