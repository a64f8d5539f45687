# The benchmark is a script (tests/benchmarks/overhead.py), never collected as tests: tests do not time anything.
collect_ignore_glob = ["*"]
