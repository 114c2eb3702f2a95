"""The lab's command-line reference in docs/reference/cli.md, generated from its parser
(`make docs`; tests/test_docs.py keeps it in step).

    python -m halb_lab.reference
"""

from __future__ import annotations

from halb.docs import CLI_PAGE, argparse_reference, markers, replace_block
from halb_lab.__main__ import parser


def update_cli_page(text: str) -> str:
    start, end = markers("cli-halb_lab")
    return replace_block(text, start, end, argparse_reference(parser()), CLI_PAGE.name)


if __name__ == "__main__":
    CLI_PAGE.write_text(update_cli_page(CLI_PAGE.read_text()))
