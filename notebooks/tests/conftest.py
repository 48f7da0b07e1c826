import sys
from pathlib import Path

# The harness modules (run_notebooks, strip_outputs) live one folder up, beside the notebooks.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
