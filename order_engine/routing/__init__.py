"""Tokens, pool math, the simulated venues and chain, and the router that picks between them."""
