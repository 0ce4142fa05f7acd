"""Alembic migrations of the ledger (script location: this package; see ``store.migrate``)."""
