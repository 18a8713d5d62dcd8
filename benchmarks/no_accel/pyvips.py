"""Put this folder on PYTHONPATH to run amberpicd as if pyvips were not installed."""

raise ImportError("pyvips disabled for the Pillow-only benchmark run")
