"""`python -m app.gui [flags]`: the desktop window (same as `affect-monitor`)."""
import sys

from app.gui.main import run_gui

sys.exit(run_gui())
