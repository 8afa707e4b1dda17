"""The admin listener (loopback): /livez, /readyz, /healthz, /metrics and the admin pages, served by the main process
for all workers (server.py); the workers' heartbeats (heartbeat.py) and the metrics they write (metrics.py)."""
