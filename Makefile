# berth: `make up` runs the main job, `make test` runs every test. Both install what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
APT_PACKAGES := runc crun conmon btrfs-progs xfsprogs busybox-static e2fsprogs attr util-linux file gnupg openssl \
	docker.io skopeo umoci docker-registry containernetworking-plugins iproute2 iptables debootstrap openssh-client lvm2 \
	golang-github-opencontainers-image-spec-dev golang-github-opencontainers-specs-dev criu
PIP_PACKAGES := pytest pytest-timeout ruff jsonschema bcrypt "ansible-core>=2.16,<2.20" ansible-lint molecule \
	pytest-testinfra voluptuous pycodestyle yamllint antsibull-docs-parser wheel hypothesis
CACHE := .cache
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
COLLECTION := dist/berth-runtime-$(VERSION).tar.gz
# where ansible.cfg (and each molecule scenario) finds the berth.runtime collection
COLLECTIONS_PATH := .collections
PYTEST_ARGS ?=

.PHONY: setup apt venv collection collection-install sanity up test test-faults test-fuzz test-kernel kernel-deps bench-kernel lint molecule unit bench bench-diff bench-containers bench-images bench-storage bench-fleet bench-deps \
	bench-plot bench-charts bench-summary docs clean

setup: apt venv collection-install

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

# The berth.runtime collection, built from library/, module_utils/, plugins/, roles/, playbooks/ and
# collection/ (galaxy.yml, meta/runtime.yml, README.md), with a wheel of berth for hosts without network.
collection: venv
	$(BIN)/python collection/build.py build --dist dist

# Installed (offline) where ansible.cfg and the molecule scenarios look: what is tested is what users install.
collection-install: collection
	$(BIN)/python collection/build.py install $(COLLECTION) $(COLLECTIONS_PATH)

# ansible-test sanity (validate-modules, pep8, import, yamllint, ...) on the built collection.
sanity: collection
	$(BIN)/python collection/build.py sanity $(COLLECTION)

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

lint: venv collection-install
	$(BIN)/ruff check runtime tests bench library module_utils molecule plugins
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/ansible-lint --profile production roles playbooks molecule

molecule: setup $(CACHE)/busybox.tar $(CACHE)/fleet.tar
	PATH=$(CURDIR)/$(BIN):$$PATH BERTH_CGROUP_PARENT=berth-molecule $(BIN)/molecule test -s default
	PATH=$(CURDIR)/$(BIN):$$PATH BERTH_CGROUP_PARENT=berth-molecule $(BIN)/molecule test -s btrfs
	PATH=$(CURDIR)/$(BIN):$$PATH BERTH_CGROUP_PARENT=berth-fleet $(BIN)/molecule test -s fleet

test: setup lint sanity $(CACHE)/busybox.tar $(CACHE)/fleet.tar
	$(MAKE) --no-print-directory molecule
	$(BIN)/pytest -p no:cacheprovider -rsx $(PYTEST_ARGS)
	$(MAKE) --no-print-directory test-kernel

# The long kill harness: every mutating command SIGKILLed at every one of its fault points (make
# test kills each at a few; see tests/faultharness.py).
test-faults: setup $(CACHE)/busybox.tar
	BERTH_FAULTS_LONG=1 $(BIN)/pytest -p no:cacheprovider -rsx tests/integration/test_faults.py \
		tests/integration/test_races.py

# The kernel lane: what this machine's kernel cannot run (dm-thin pools, XFS project quotas, a pure
# cgroup v2 host) runs in a qemu VM with Debian's own kernel. The first step runs the named tests; the
# guest then reboots and the second step checks what must survive a reboot. A skip inside fails.
KERNEL_IMAGE := $(CACHE)/kernel
KERNEL_STEP1 := tests/integration/test_dm_thin.py \
	tests/integration/test_host_prepare.py::test_thin_pool_plan_and_refusals \
	tests/integration/test_host_prepare.py::test_loop_lvm_thin_pool_made_and_used \
	tests/integration/test_size_limits.py::test_overlay_size_on_xfs_project_quota \
	tests/kernel/test_cgroup_v2.py tests/kernel/test_dm_thin_containers.py \
	tests/integration/test_checkpoint.py::test_checkpoint_and_restore \
	tests/kernel/test_reboot.py::test_before_reboot $(KERNEL_EXTRA)
KERNEL_STEP2 := tests/kernel/test_reboot.py::test_after_reboot
# e.g. KERNEL_EXTRA=tests/kernel/test_storage_role.py: the berth_storage role on dm-thin (about 4 more minutes)
KERNEL_EXTRA ?=

# The long fuzz run: every parser berth has (state files, archives, references, CLI flag values, trust
# policies, signatures) with BERTH_FUZZ_EXAMPLES random inputs each (make test runs 40, always the same).
BERTH_FUZZ_EXAMPLES ?= 2000
test-fuzz: setup
	BERTH_FUZZ_EXAMPLES=$(BERTH_FUZZ_EXAMPLES) $(BIN)/pytest -p no:cacheprovider -q tests/integration/test_fuzz.py

kernel-deps:
	@missing=$$(for p in qemu-system-x86 kmod debootstrap busybox-static e2fsprogs; do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# Debian's kernel and a debootstrapped guest root (about 2 minutes, then cached).
$(KERNEL_IMAGE)/root.img: scripts/kernel/image.sh scripts/kernel/initramfs-init.sh scripts/kernel/guest-init.sh \
		scripts/debian-rootfs.sh
	scripts/kernel/image.sh $(KERNEL_IMAGE)

test-kernel: setup kernel-deps $(KERNEL_IMAGE)/root.img
	$(PYTHON) scripts/kernel/lane.py --image $(KERNEL_IMAGE) --timeout 1200 \
		--step "$(KERNEL_STEP1)" --step "$(KERNEL_STEP2)"

# Benchmarks (not part of `make test`). Each writes bench/results-<kind>-<date>.json; `make bench`
# then draws the charts (bench/chart-*.png) and prints the one table of every phase against issue 15's
# targets (bench/summary.py, also written to bench/summary-<date>.md) from the latest results. BENCH_ARGS goes to the one
# script a target runs, e.g. `make bench-containers BENCH_ARGS=--quick` (its results are named
# *-quick.json and are not charted by default).
BENCH_ARGS ?=
BENCH_DATE := $(shell date +%Y%m%d)$(if $(findstring --quick,$(BENCH_ARGS)),-quick)

bench: bench-diff bench-containers bench-images bench-storage bench-fleet
	$(MAKE) --no-print-directory bench-charts
	$(MAKE) --no-print-directory bench-summary

bench-diff: setup
	$(BIN)/python bench/diff.py --json bench/results-diff-$(BENCH_DATE).json $(BENCH_ARGS)

bench-storage: setup
	$(BIN)/python bench/storage.py --json bench/results-storage-$(BENCH_DATE).json $(BENCH_ARGS)

# bench/storage.py in the kernel lane's VM, where devicemapper also runs on a real dm-thin pool; the
# table comes out on the console (software emulation: compare ratios, not times).
bench-kernel: setup kernel-deps $(KERNEL_IMAGE)/root.img
	$(PYTHON) scripts/kernel/lane.py --image $(KERNEL_IMAGE) --timeout 900 --shell \
		--step ".venv/bin/python bench/storage.py --n 20 --reps 3 --data-mib 20 $(BENCH_ARGS)"

bench-fleet: setup $(CACHE)/busybox.tar $(CACHE)/fleet.tar
	$(BIN)/python bench/fleet.py --json bench/results-fleet-$(BENCH_DATE).json $(BENCH_ARGS)

# The plotting library, in the venv for the bench only (the tests do not need it).
bench-plot: setup
	@$(BIN)/python -c 'import matplotlib' 2>/dev/null || $(BIN)/pip install -q --disable-pip-version-check matplotlib

# The peers (docker, podman), debootstrap for the Debian rootfs, jq for the runc floor.
bench-deps: setup bench-plot
	@missing=$$(for p in docker.io podman debootstrap jq; do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi

$(CACHE)/debian.tar: scripts/debian-rootfs.sh
	@mkdir -p $(CACHE)
	scripts/debian-rootfs.sh $@

$(CACHE)/debroot.done: $(CACHE)/debian.tar
	rm -rf $(CACHE)/debroot && mkdir -p $(CACHE)/debroot
	tar --numeric-owner -C $(CACHE)/debroot -xf $<
	touch $@

bench-containers: bench-deps $(CACHE)/debroot.done
	$(BIN)/python bench/containers.py --debroot $(CACHE)/debroot --json bench/results-containers-$(BENCH_DATE).json $(BENCH_ARGS)

bench-images: bench-deps $(CACHE)/debroot.done
	$(BIN)/python bench/images.py --debroot $(CACHE)/debroot --json bench/results-images-$(BENCH_DATE).json $(BENCH_ARGS)

# Charts from the recorded results (no benchmark is run): bench/chart-*.png.
bench-charts: bench-plot
	$(BIN)/python bench/charts.py

# The table of every phase from the recorded results (no benchmark is run), also bench/summary-<date>.md.
bench-summary:
	$(or $(wildcard $(BIN)/python),$(PYTHON)) bench/summary.py

# The architecture picture: docs/architecture.dot -> docs/architecture.png (Graphviz).
docs:
	@command -v dot >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null; }
	dot -Tpng -Gdpi=110 docs/architecture.dot -o docs/architecture.png

clean:
	rm -rf $(VENV) $(CACHE) dist $(COLLECTIONS_PATH)
