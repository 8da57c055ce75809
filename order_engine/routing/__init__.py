"""Tokens, pool math, the venue protocol, and the router that picks between venues."""
