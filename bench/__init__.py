"""Benchmarks that print figures (`make bench`)."""
import os

# Benchmarks start service processes while their own channels are live: no grpc fork handlers
# (grpc/grpc#43055; see services/cli/__main__.py).
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
