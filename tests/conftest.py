import sys
from pathlib import Path

# tests/ helpers (midi_factory) are plain modules, not a package
sys.path.insert(0, str(Path(__file__).parent))
