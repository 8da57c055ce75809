"""An order execution engine for token swaps on (simulated) Solana DEXs."""
