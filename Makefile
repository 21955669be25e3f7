# VPC testbed — top-level entry points. Run as root on Debian 12 / Ubuntu.
#   make demo    install what is needed, build, and run the main job
#   make test    install what is needed, build, and run every test (what CI runs)
SHELL := /bin/bash
.DEFAULT_GOAL := help
BUILD := build

.PHONY: help setup images npb guest host build test demo doctor testbed store clean

# `make testbed up|status|down`: the word after `testbed` is its action, not a target of its own.
ifeq (testbed,$(firstword $(MAKECMDGOALS)))
  TESTBED_ACTION := $(or $(word 2,$(MAKECMDGOALS)),status)
  $(eval $(TESTBED_ACTION):;@:)
endif
# `make store up|status|down`: likewise (scripts/store.sh: one-node Ceph + radosgw, S3 on 127.0.0.1;
# `scripts/store.sh doctor` names what is missing: `make store doctor` would collide with `make doctor`).
ifeq (store,$(firstword $(MAKECMDGOALS)))
  STORE_ACTION := $(or $(word 2,$(MAKECMDGOALS)),status)
  $(eval $(STORE_ACTION):;@:)
endif

help:
	@echo "make demo    set up this machine, build everything, run the main job"
	@echo "make test    set up this machine, build everything, run all tests"
	@echo "make setup   install Debian packages and npm dependencies only"
	@echo "make images  build NPB binaries, the guest image and the L1 host image (cached)"
	@echo "make doctor  check this machine's prerequisites and print how to fix what is missing"
	@echo "make build   build every package"
	@echo "make testbed up|status|run|checkpoint|kill|restore|down"
	@echo "             the default testbed (testbed/default.json): hosts + VMs kept by a daemon;"
	@echo "             CONFIG=FILE for another (testbed/nested.json: two qemu hosts), ARGS=\"--checkpoint-every 1000\""
	@echo "make store up|status|down"
	@echo "             a one-node Ceph with radosgw (S3 API) on 127.0.0.1 for @vpc/storage's remote store;"
	@echo "             STORE_DIR (default /var/tmp/vpc-store), STORE_OSD=bluestore|memstore"
	@echo "make clean   remove build outputs"

setup:
	bash scripts/setup.sh

npb:
	$(MAKE) -C images/npb OUT=$(abspath $(BUILD))/npb

guest: npb
	bash images/guest/build.sh $(abspath $(BUILD))/images/guest
	VARIANT=slim bash images/guest/build.sh $(abspath $(BUILD))/images/guest-slim

host:
	bash images/host/build.sh $(abspath $(BUILD))/images/host

images: npb guest host

build:
	npm run build

test: setup images
	npm test

# The main job (testbed/demo.json): two netns hosts, one VM each, NPB CG across them with vpc global checkpoints every
# second, the whole cluster killed mid-run and restored, the verification line and metrics.
demo: setup images build
	node packages/cli/dist/bin.js cluster demo

testbed: $(if $(filter up,$(TESTBED_ACTION)),setup images) build
	node packages/cli/dist/bin.js testbed $(TESTBED_ACTION) $(if $(CONFIG),--config $(CONFIG)) $(ARGS)

doctor: build
	node packages/cli/dist/bin.js doctor

store:
	bash scripts/store.sh $(STORE_ACTION)

clean:
	rm -rf $(BUILD) packages/*/dist .turbo packages/*/.turbo
