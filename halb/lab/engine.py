"""The real Pulumi engine for the lab: the official CLI when installed, else the one
`make engine` builds into .engine/bin. Usable only when the pulumi-command provider is there too.

A file backend in the lab's state directory, a passphrase secrets provider, and a copy of the
stack file as `--config-file`, so the repository's Pulumi.lab.yaml never changes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from halb.lab.program import PROJECT_DIR
from halb.lab.topology import STATE
from halb.lab.vault import DEFAULT_PASSPHRASE

BUILT = PROJECT_DIR / ".engine" / "bin"
WORKDIR = STATE / "engine"
STACK = "lab"


@dataclass(frozen=True)
class Engine:
    pulumi: str

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PATH": f"{BUILT}:{os.environ.get('PATH', '')}",
            "PULUMI_BACKEND_URL": f"file://{WORKDIR / 'backend'}",
            "PULUMI_CONFIG_PASSPHRASE": os.environ.get("PULUMI_CONFIG_PASSPHRASE", DEFAULT_PASSPHRASE),
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",  # nothing to download from here
            "PULUMI_PYTHON_CMD": str(PROJECT_DIR / ".venv" / "bin" / "python"),  # for the built language host
        }

    def argv(self, *args: str, config_file: Path | None = None) -> list[str]:
        extra = ["--config-file", str(config_file)] if config_file is not None else []
        return [self.pulumi, *args, "--stack", STACK, "--cwd", str(PROJECT_DIR), *extra]

    def urn(self, name: str) -> str:
        """The URN of a resource of the lab stack by its name (halb's names are unique)."""
        out = subprocess.run(
            self.argv("stack", "--show-urns"), capture_output=True, text=True, env=self.env(), check=False
        ).stdout
        return next((w for w in out.split() if w.startswith("urn:") and w.endswith(f"::{name}")), name)

    def run(self, *args: str, config_file: Path | None = None, stdin: str | None = None) -> int:
        cmd = self.argv(*args, config_file=config_file)
        return subprocess.run(cmd, env=self.env(), input=stdin, text=True, check=False).returncode


def find() -> tuple[Engine | None, str]:
    """The engine and "", or None and why it cannot run the lab stack."""
    pulumi = shutil.which("pulumi") or (str(BUILT / "pulumi") if (BUILT / "pulumi").exists() else None)
    if pulumi is None:
        return None, "no Pulumi CLI (run `make engine`)"
    plugin_dirs = [BUILT, Path(pulumi).parent, Path.home() / ".pulumi" / "plugins"]
    provider = shutil.which("pulumi-resource-command") or next(
        (str(p) for d in plugin_dirs if d.exists() for p in d.rglob("pulumi-resource-command")), None
    )
    if provider is None:
        status = PROJECT_DIR / ".engine" / "status"
        why = status.read_text().splitlines()[0] if status.exists() and status.read_text() else "not installed"
        return None, f"no pulumi-command provider ({why})"
    return Engine(pulumi), ""
