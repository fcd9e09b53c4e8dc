"""The `kcc` command line: serve, flows, users, applications, the database, the terminal
phone and the demo data."""
