"""Tests of the adapters (memory adapters bound to the shared contracts, clocks)."""
