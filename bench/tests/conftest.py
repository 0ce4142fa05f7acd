import sys
from pathlib import Path

# The benchmark's modules are plain scripts in bench/ (run as `python bench/run.py`).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
