from ._stub import stub

profile = stub("profile", 7, "profile partitions")
