"""Write docs/bad_input.md: every case of the bad-input catalogue with the error a user sees.

    python tools/bad_input_table.py [--out docs/bad_input.md]

Each case of ``tests/test_bad_input.py`` is built for real and its error (type, message, the
function that raised it) goes into the table; tests/test_bad_input.py checks that the file is
what this script writes.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.test_bad_input import CASES, Case, run_case  # noqa: E402

HEADER = """# Bad input: one clear error before the first iteration

Every row is something a user can get wrong in a config or on a command line, and the error
kd_det gives for it, copied from the real output (a temporary folder is shown as `/path/to`,
installed packages as `<site-packages>`). Each is raised while the distiller, a loss, a
connector, a mapper, a hook or a tool's input check is built, before the first iteration. The
cases are `tests/test_bad_input.py::CASES`; those checked by an older test name it. A row marked
**open** is not yet the error it must be: its reason names the change and the file.

Regenerate after changing a message: `python tools/bad_input_table.py`
(`tests/test_bad_input.py::test_doc_table_is_up_to_date` fails while this file is stale).
"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "<br>")


def _code(text: str) -> str:
    """``text`` as an inline code span that survives backticks, pipes and newlines."""
    fence = "`"
    while fence in text:
        fence += "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{_cell(text)}{pad}{fence}"


def _row(n: int, case: Case, tmp: Path) -> str:
    folder = tmp / case.id
    folder.mkdir()
    outcome = run_case(case, folder)
    if outcome is None:
        error, where = "**no error at construction**", ""
    else:
        error = f"{outcome.error}: {_code(outcome.message)}"
        where = _code(outcome.where)
    status = f"**open**: {case.xfail}" if case.xfail else "ok"
    tested = case.tested_in or f"tests/test_bad_input.py[{case.id}]"
    cells = [str(n), case.id, _code(case.example), error, where, _code(tested), _cell(status)]
    return "| " + " | ".join(cells) + " |"


def render(tmp: Path) -> str:
    """The document, each case built in its own folder under ``tmp``."""
    lines = [HEADER]
    group = None
    for n, case in enumerate(CASES, 1):
        if case.group != group:
            group = case.group
            lines += [
                "",
                f"## {group}",
                "",
                "| # | case | example input | error | raised in | tested in | status |",
                "|---|---|---|---|---|---|---|",
            ]
        lines.append(_row(n, case, tmp))
    open_cases = sum(c.xfail is not None for c in CASES)
    lines += [
        "",
        f"{len(CASES)} cases, {sum(c.tested_in is None for c in CASES)} of them tested in "
        f"tests/test_bad_input.py, {open_cases} open.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(REPO / "docs" / "bad_input.md"))
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        text = render(Path(tmp))
    Path(args.out).write_text(text)
    print(f"wrote {args.out}: {len(CASES)} cases")


if __name__ == "__main__":
    main()
