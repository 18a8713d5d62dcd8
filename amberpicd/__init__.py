"""amberpicd: private, local image processing for the Linux desktop."""

import os

# Pydantic loads every installed plugin (entry points) at import: a third-party plugin
# could add telemetry, and scanning for them costs start-up time. amberpicd uses none.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

__version__ = "0.1.0"
