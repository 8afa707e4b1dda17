"""The admin listener (loopback): /healthz and /metrics, served by the main process for all workers."""
