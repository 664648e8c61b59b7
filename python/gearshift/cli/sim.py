from ._stub import stub

sim = stub("sim", 3, "simulated GPU")
