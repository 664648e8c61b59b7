from ._stub import stub

run = stub("run", 7, "enforce a schedule")
