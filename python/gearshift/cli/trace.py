from ._stub import stub

trace = stub("trace", 4, "trace a training step")
