"""docs/ledger.md stays true: every column, index and view it documents is the one the
migrations create, and every filter and group the API takes is documented."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from sqlalchemy import inspect

from switchpoint.store import queries
from switchpoint.store.engine import make_engine
from switchpoint.store.tables import attempts, feedback, requests

DOC = (Path(__file__).parent.parent / "docs" / "ledger.md").read_text()
VIEWS_PY = (
    Path(__file__).parent.parent
    / "src"
    / "switchpoint"
    / "store"
    / "migrations"
    / "versions"
    / "0002_task_views.py"
)


def _sql_block() -> str:
    m = re.search(r"```sql\n(.*?)```", DOC, re.S)
    assert m is not None
    return m.group(1)


def test_every_column_and_index_is_in_the_documented_schema() -> None:
    sql = _sql_block()
    for table in (requests, attempts, feedback):
        body = re.search(rf"CREATE TABLE {table.name} \((.*?)\n\);", sql, re.S)
        assert body is not None, table.name
        code = re.sub(r"--[^\n]*", "", body.group(1))  # the comments do not count
        documented = set(
            re.findall(r"\b([a-z_0-9]+) (?:TEXT|INTEGER|DOUBLE PRECISION|BOOLEAN|JSON|SERIAL)\b", code)
        )
        missing = [c.name for c in table.columns if c.name not in documented]
        assert not missing, (table.name, missing)
        documented_ix = set(re.findall(rf"CREATE INDEX (\w+) ON {table.name} \(([^)]*)\)([^;]*);", sql))
        real = set()
        for index in table.indexes:
            where = index.dialect_options["postgresql"]["where"]
            real.add(
                (
                    index.name,
                    ", ".join(c.name for c in index.columns),
                    f" WHERE {where}" if where is not None else "",
                )
            )
        assert documented_ix == real, table.name


def test_every_view_is_documented_and_created(ledger_url: str) -> None:
    spec = importlib.util.spec_from_file_location("views_0002", VIEWS_PY)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    names = [name for name, _ in mod.VIEWS]
    engine = make_engine(ledger_url)
    try:
        created = set(inspect(engine).get_view_names())
    finally:
        engine.dispose()
    for name in names:
        assert f"`{name}`" in DOC, name
        assert name in created, name


def test_api_groups_and_filters_are_documented() -> None:
    for name in queries.GROUPS:
        assert name in DOC.split("### `GET /admin/usage`")[1].split("\n\n")[1], name
    for name in (*queries.FILTERS, "tag=k=v", "errors=true|false"):
        assert f"`{name}`" in DOC, name
