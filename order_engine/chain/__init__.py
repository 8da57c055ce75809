"""The simulated Solana chain: its pools, its ledger of transactions, and the venues that
trade on it."""
