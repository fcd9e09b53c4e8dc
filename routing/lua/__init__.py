"""Every Lua script of kcc-ivr; routing/scripts.py runs them (one runner, typed results)."""
