from pathlib import Path

import ledger_write
from sqlalchemy import text

from switchpoint.store.engine import make_engine
from switchpoint.store.migrate import upgrade
from switchpoint.store.tables import ATTEMPT_COLUMNS, REQUEST_COLUMNS
from switchpoint.store.writer import Writer


def test_the_rows_it_writes_are_ledger_rows_the_writer_takes(tmp_path: Path) -> None:
    requests, attempts = ledger_write._rows(7, 100, attempts=True)
    assert {len(r) for r in requests} == {len(REQUEST_COLUMNS)}
    assert {len(a) for a in attempts} == {len(ATTEMPT_COLUMNS)}
    engine = make_engine(f"sqlite:///{tmp_path}/ledger.db")
    upgrade(engine)
    Writer(engine).write(requests, attempts)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT count(*), sum(cost_usd), min(status) FROM requests")).one()
        tries = conn.execute(text("SELECT count(*) FROM attempts")).scalar_one()
    engine.dispose()
    assert rows[0] == 7 and tries == 7 and rows[2] == 200
    assert abs(rows[1] - sum(r[REQUEST_COLUMNS.index("cost_usd")] for r in requests)) < 1e-12
    assert ledger_write._rows(3, 0, attempts=False)[1] == []
