"""What the tests and the benchmark do to the deployed pair: probes, the client watch, drills and faults."""
