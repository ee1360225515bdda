# sshrec: `make demo` installs and records a demonstration session; `make test` runs every test.
# A venv built from the system python (/usr/bin/python3 when present) so that test users
# started by sshd can execute it (a python under /root would be out of their reach).
PYTHON ?= $(firstword $(wildcard /usr/bin/python3) python3)
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_HOME ?= $(if $(SSHREC_HOME),$(SSHREC_HOME),$(shell $(PYTHON) -c 'import os;print("/var/lib/sshrec" if os.geteuid()==0 else os.path.join(os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share"),"sshrec"))'))

.PHONY: demo test install system-deps services lint bench clean

$(BIN)/sshrec: pyproject.toml setup.py schema/_fastcast.c recorder/_proctl.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/sshrec

demo: install
	@echo "== recording a scripted session into $(DEMO_HOME)"
	@rm -f .demo-session-id
	SSHREC_DEMO_ID_FILE=$(CURDIR)/.demo-session-id $(BIN)/sshrec -- sh samples/demo-session.sh
	@echo "== the recording, printed back by: sshrec cat $$(cat .demo-session-id)"
	@$(BIN)/sshrec cat $$(cat .demo-session-id)
	@echo "== files:"; ls -l $(DEMO_HOME)/recordings/*/*/*/$$(cat .demo-session-id).*
	@echo "== the index (sshrec index; then sshrec ls):"
	@$(BIN)/sshrec index --quiet && $(BIN)/sshrec ls --limit 5
	@echo "== replay it with: $(BIN)/sshrec play $$(cat .demo-session-id)"

# OpenSSH server and client, nc and rsync for the end-to-end tests, tmux for the terminal UI
# tests (root only; others must have them).
system-deps:
	@if [ ! -x /usr/sbin/sshd ] || ! command -v ssh >/dev/null || ! command -v script >/dev/null \
	    || ! command -v tmux >/dev/null || ! command -v nc >/dev/null || ! command -v rsync >/dev/null \
	    || ! command -v zsh >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q openssh-server openssh-client \
	      bsdutils tmux netcat-openbsd rsync zsh; \
	  else echo "install openssh-server, openssh-client, tmux, netcat-openbsd, rsync, zsh (the end-to-end tests)"; fi; \
	fi

# PostgreSQL on 127.0.0.1:5432 for the index tests: started if it is installed but down.
services:
	@if ! $(PYTHON) -c 'import socket; socket.create_connection(("127.0.0.1", 5432), 2)' 2>/dev/null \
	    && [ "$$(id -u)" = 0 ] && [ -d /etc/postgresql ]; then \
	  for v in $$(ls /etc/postgresql); do pg_ctlcluster --skip-systemctl-redirect $$v main start || true; done; \
	fi

lint: install
	$(BIN)/ruff check .

# Tests first, then lint: one run reports both. -rs: every skip says why.
test: system-deps services install
	$(BIN)/python -m pytest -q -rs -p no:cacheprovider
	$(BIN)/ruff check .

# The recorder against script/asciinema/tlog/ttyrec; the others: bench/README.md.
bench: install
	$(BIN)/python bench/record_bench.py --installed

clean:
	rm -rf $(VENV) .demo-session-id build *.egg-info
