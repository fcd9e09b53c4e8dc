"""One router per noun of the staff API (auth, hours, queue, config, advisers, flows), plus the
pages and the operations endpoints."""
