"""The edges of kcc-ivr: the staff web app, the Twilio webhooks and the `kcc` command line,
with the settings, database plumbing and wiring (services.py) they share. Nothing imports api."""
