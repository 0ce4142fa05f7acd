"""The ledger's database: SQLAlchemy tables, Alembic migrations, and the typed queries the
rest of the gateway calls. The only room that knows SQL."""
