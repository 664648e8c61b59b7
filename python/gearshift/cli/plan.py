from ._stub import stub

plan = stub("plan", 5, "multi-objective search")
