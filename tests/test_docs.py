"""Docs that cannot drift: the README's example output is what the example prints, and every
command-line option is documented in the README."""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _block_after(marker: str) -> str:
    start = README.index(marker)
    m = re.search(r"```\n(.*?)```", README[start:], re.S)
    return m.group(1)


def test_readme_descriptor_example_output_is_real(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "descriptors" / "descriptors_example.py")],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout == _block_after("runs this and prints:")


def test_readme_mentions_every_fit_option():
    help_text = subprocess.run([sys.executable, "-m", "mpisnap", "fit", "--help"], cwd=ROOT / "tests",
                               capture_output=True, text=True, timeout=60).stdout
    options = set(re.findall(r"(--[a-z][a-z-]+)", help_text)) - {"--help"}
    missing = [o for o in sorted(options) if o not in README]
    assert not missing, f"README does not document {missing}"
