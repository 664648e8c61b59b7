from ._stub import stub

bench = stub("bench", 6, "micro-benchmarks")
