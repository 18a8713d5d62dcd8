import sys
from pathlib import Path

# Make tests/images.py importable as "images" from every test module.
sys.path.insert(0, str(Path(__file__).parent))
