"""`ddbrepl demo` works offline on a machine with no AWS account and no database: the README's first command."""

from __future__ import annotations

import os
import subprocess
import sys


def test_demo_tells_the_employees_story() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DDBREPL_"))}
    proc = subprocess.run([sys.executable, "-m", "ddbrepl", "demo"], capture_output=True, text=True, timeout=180,
                          env=env, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "backfill of Employees finished: 3 items" in out
    assert "1003 | Esi Mensah-Bonsu of  | NA" in out  # truncated name, defaulted department
    assert '"Akua"}  ->  in PostgreSQL after' in out
    assert "2001 | Akua                 | AnyDept      | stream" in out
    assert "2001 | Akua                 | ExDept       | stream" in out
    assert "delete Id 2001  ->  in PostgreSQL after" in out
    assert out.rstrip().endswith("the checkpoints are in ddbrepl.checkpoints.")
    assert "Traceback" not in proc.stderr and "Warning" not in proc.stderr
