from ._stub import stub

report = stub("report", 7, "frontier plot and savings")
