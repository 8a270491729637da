"""Benchmark helpers: parsing and judging nccl-tests style outputs."""
