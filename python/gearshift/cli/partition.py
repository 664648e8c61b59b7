from ._stub import stub

partition = stub("partition", 4, "partition a kernel trace")
