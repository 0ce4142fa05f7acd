from pathlib import Path

import instructions
import pytest


def test_total_instructions_reads_the_totals_line_not_the_summary(tmp_path: Path) -> None:
    dump = tmp_path / "callgrind.1.1"
    dump.write_text("version: 1\nevents: Ir\nsummary: 0\n\nfn=(1) main\n5 10\n\ntotals: 563517872\n")
    assert instructions.total_instructions(dump) == 563_517_872
    dump.write_text("events: Ir\nsummary: 0\n")
    with pytest.raises(ValueError):
        instructions.total_instructions(dump)
