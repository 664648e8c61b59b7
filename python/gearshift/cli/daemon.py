from ._stub import stub

daemon = stub("daemon", 10, "clock daemon")
