"""Queues, advisers, offers and telephony in Redis (every key in keys.py, every Lua script in
lua/, one runner), and the domain-free helpers the layers above use: masking, sealing, the clock."""
