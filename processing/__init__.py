"""SageMaker Processing entrypoints of the aws backend: one script per Processing job.

Each script runs as `python3 extract_features.py ...` inside the model image (where the
`highlights` package is installed) and is importable for tests as `processing.<name>`.
"""

from __future__ import annotations

import sys
from pathlib import Path

# SageMaker Processing shows the start (1 KB) of this file as the job's ExitMessage
# (https://docs.aws.amazon.com/sagemaker/latest/dg/byoc-metadata.html).
EXIT_MESSAGE = Path("/opt/ml/output/message")


def fail(program: str, error: Exception) -> int:
    """Report a job's error on stderr and, inside a processing container (where the message
    file's folder exists), as its ExitMessage. Returns the exit status for bad input, 2."""
    text = f"{program}: {error}"
    print(text, file=sys.stderr)
    if EXIT_MESSAGE.parent.is_dir():
        try:
            EXIT_MESSAGE.write_text(text + "\n", encoding="utf-8")
        except OSError as exc:
            print(f"{program}: could not write {EXIT_MESSAGE}: {exc}", file=sys.stderr)
    return 2
