"""The call engine (pure: a session and keys in, a turn out) and the call edge that runs it for
each webhook: sessions, TwiML, opening hours, flow versions, call records."""
