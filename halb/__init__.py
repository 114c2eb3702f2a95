"""halb: a highly available HAProxy + Keepalived pair with one floating VIP."""

from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent  # the checkout: Pulumi.yaml, __main__.py, templates/
PROJECT = "halb"  # Pulumi.yaml's `name`, and the namespace of every config key (`halb:nodes`)


def virtualenv() -> str:
    """The program's virtualenv, as Pulumi.yaml declares it (relative to the project)."""
    import yaml

    options = yaml.safe_load((PROJECT_DIR / "Pulumi.yaml").read_text())["runtime"]["options"]
    return str(options["virtualenv"])
