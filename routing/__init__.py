"""Queues, advisers, offers and telephony in Redis (every key in keys.py, every Lua script in
lua/, one runner), and the domain-free helpers every layer above uses: masking, sealing, the clock."""
