"""Staffing: how many advisers a load of calls needs (Erlang C), and a simulation that checks
the figures on the real routing code (docs/staffing.md)."""
