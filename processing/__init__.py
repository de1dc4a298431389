"""SageMaker Processing entrypoints of the aws backend: one script per Processing job.

Each script runs as `python3 extract_features.py ...` inside the model image (where the
`highlights` package is installed) and is importable for tests as `processing.<name>`.
"""
