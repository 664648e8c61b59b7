from ._stub import stub

clock = stub("clock", 10, "clock daemon client")
