"""HTTP and WebSocket handlers: validate, call a service, answer. No SQL here."""
