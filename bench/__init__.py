"""Benchmark harness (`fraudstream bench`) and the peer implementations it compares."""
