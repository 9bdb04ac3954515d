"""The `rayflow` command line (installed as the `rayflow_cli` package)."""
