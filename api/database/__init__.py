"""The database: engines for SQLite and PostgreSQL, one transaction per unit of work, and
the schema of every table."""
