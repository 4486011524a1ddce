"""Load and throughput testing harness for the Losant REST API, with an embedded emulator."""

__version__ = "0.1.0"
