# Set-up and entry points. Everything runs as root on Debian 12; see README.md.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
# System tools kshock drives, and the Debian packages that bring them; gcc and Python's
# headers build the compiled JSON lane of `kshock decode --json` (setup.py).
SYSTEM_TOOLS := ip ethtool iptables nft tc tcpdump tshark tcpreplay tmux ping pgrep gcc
APT_PACKAGES := iproute2 ethtool iptables nftables tcpdump tshark tcpreplay tmux iputils-ping procps \
	gcc libc6-dev python3-dev
HAS_HEADERS := import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))

.PHONY: setup system venv test demo lint clean

setup: system venv

system:
	@missing=""; for tool in $(SYSTEM_TOOLS); do command -v $$tool >/dev/null || missing="$$missing $$tool"; done; \
	$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || missing="$$missing python3-venv"; \
	$(PYTHON) -c '$(HAS_HEADERS)' || missing="$$missing Python.h"; \
	[ -e /usr/include/stdlib.h ] || missing="$$missing libc6-dev"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages (missing:$$missing)"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
	    $(APT_PACKAGES) $$( $(PYTHON) -c 'import ensurepip' 2>/dev/null || echo python3-venv ); \
	fi

venv: $(VENV)/.installed

# constraints.txt pins every package to the version the suite passed with; PIP_CONSTRAINT (not
# -c) so that pip's isolated build of the compiled lane is pinned too (Cython, setuptools).
$(VENV)/.installed: pyproject.toml setup.py kshock/wire/_lane.pyx kshock/wire/_lane.pxd constraints.txt
	$(PYTHON) -m venv $(VENV)
	PIP_CONSTRAINT=$(CURDIR)/constraints.txt $(VENV)/bin/pip install -q --disable-pip-version-check -e '.[test]'
	touch $@

test: setup
	$(VENV)/bin/python -m pytest

demo: setup
	$(VENV)/bin/kshock demo

clean:
	-$(VENV)/bin/kshock lab down --name demo
	rm -rf $(VENV) build *.egg-info kshock/wire/_lane.c kshock/wire/_lane.*.so
