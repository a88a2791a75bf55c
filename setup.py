"""Build hook: ship the detection rules inside the package.

The rules live in ``rules/`` at the top of the repository, where analysts read and edit them; an
installed (non-editable) package has no repository beside it, so the build copies ``rules/*.yaml``
(and the example zones file) to ``ics_monitor/rules/``, where ``detect.rules.default_directory``
looks first.  Everything else about the package is in ``pyproject.toml``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

RULES = Path(__file__).resolve().parent / "rules"


class BuildWithRules(build_py):
    """``build_py`` plus the rules files."""

    def run(self) -> None:
        """Build the package, then copy the rules into it."""
        super().run()
        target = Path(self.build_lib) / "ics_monitor" / "rules"
        for source in [*sorted(RULES.glob("*.yaml")), RULES / "README.md", RULES / "examples" / "zones.yaml"]:
            if source.is_file():
                destination = target / source.relative_to(RULES)
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, destination)


setup(cmdclass={"build_py": BuildWithRules})
