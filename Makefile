# berth: `make up` runs the main job, `make test` runs every test. Both install what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
APT_PACKAGES := runc crun conmon btrfs-progs xfsprogs busybox-static e2fsprogs attr util-linux file gnupg openssl \
	docker.io skopeo umoci docker-registry containernetworking-plugins iproute2 iptables debootstrap openssh-client lvm2 \
	golang-github-opencontainers-image-spec-dev golang-github-opencontainers-specs-dev
PIP_PACKAGES := pytest pytest-timeout ruff jsonschema bcrypt "ansible-core>=2.16,<2.20" ansible-lint molecule \
	pytest-testinfra
CACHE := .cache
PYTEST_ARGS ?=

.PHONY: setup apt venv up test lint molecule unit bench bench-diff bench-containers bench-images bench-storage bench-fleet bench-deps clean

setup: apt venv

apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

venv: $(BIN)/python
	@$(BIN)/pip install -q --disable-pip-version-check -e . $(PIP_PACKAGES)
	@$(BIN)/python -m compileall -q runtime  # PYTHONDONTWRITEBYTECODE may be set: ship the bytecode

$(CACHE)/busybox.tar: scripts/busybox-rootfs.sh
	@mkdir -p $(CACHE)
	scripts/busybox-rootfs.sh $@

# The fleet's system-container image (debootstrap; about a minute, then cached).
$(CACHE)/fleet.tar: scripts/fleet-image.sh scripts/fleet-init.py scripts/debian-rootfs.sh
	@mkdir -p $(CACHE)
	scripts/fleet-image.sh $@

# The main job: converge this machine to inventory/local (a busybox web server on :18080 and a
# worker). Run it again and it reports changed=0.
up: setup $(CACHE)/busybox.tar
	$(BIN)/ansible-playbook -i inventory/local playbooks/site.yml
	$(BIN)/berth images
	$(BIN)/berth ps

lint: venv
	$(BIN)/ruff check runtime tests bench library module_utils molecule plugins
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/ansible-lint --profile production roles playbooks molecule

molecule: setup $(CACHE)/busybox.tar $(CACHE)/fleet.tar
	PATH=$(CURDIR)/$(BIN):$$PATH BERTH_CGROUP_PARENT=berth-molecule $(BIN)/molecule test -s default
	PATH=$(CURDIR)/$(BIN):$$PATH BERTH_CGROUP_PARENT=berth-molecule $(BIN)/molecule test -s btrfs
	PATH=$(CURDIR)/$(BIN):$$PATH BERTH_CGROUP_PARENT=berth-fleet $(BIN)/molecule test -s fleet

test: setup lint $(CACHE)/busybox.tar $(CACHE)/fleet.tar
	$(MAKE) --no-print-directory molecule
	$(BIN)/pytest -p no:cacheprovider -rsx $(PYTEST_ARGS)

bench: bench-diff bench-containers bench-images bench-storage bench-fleet

bench-diff: setup
	$(BIN)/python bench/diff.py

bench-storage: setup
	$(BIN)/python bench/storage.py

bench-fleet: setup $(CACHE)/busybox.tar $(CACHE)/fleet.tar
	$(BIN)/python bench/fleet.py

# The peers (docker, podman) and a debootstrap'd Debian with python3 for the commit/diff phases.
bench-deps: setup
	@missing=$$(for p in docker.io podman debootstrap; do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi

$(CACHE)/debian.tar: scripts/debian-rootfs.sh
	@mkdir -p $(CACHE)
	scripts/debian-rootfs.sh $@

$(CACHE)/debroot.done: $(CACHE)/debian.tar
	rm -rf $(CACHE)/debroot && mkdir -p $(CACHE)/debroot
	tar --numeric-owner -C $(CACHE)/debroot -xf $<
	touch $@

bench-containers: bench-deps $(CACHE)/debroot.done
	$(BIN)/python bench/containers.py --debroot $(CACHE)/debroot

bench-images: bench-deps $(CACHE)/debroot.done
	$(BIN)/python bench/images.py --debroot $(CACHE)/debroot

clean:
	rm -rf $(VENV) $(CACHE)
