# The project's two commands: `make lab` (bring up the seeds' lab with its
# sample workloads) and `make test` (every test). Both install what is
# missing first (scripts/setup.sh is idempotent).

CARGO ?= cargo
# Every build made here has the BPF programs (a missing clang is an error,
# not an empty datapath).
export CILIUM_REQUIRE_BPF := 1
LAB ?= lab
RELEASE := target/release/cilium-lab

.PHONY: setup build lab lab-down lint test fuzz bench bench-api clean

setup:
	@bash scripts/setup.sh

build: setup
	$(CARGO) build --release --workspace --bins

lab: build
	$(RELEASE) --name $(LAB) up --workloads

lab-down:
	@if [ -x $(RELEASE) ]; then $(RELEASE) --name $(LAB) down; else echo "nothing built, nothing to tear down"; fi

lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) fmt --manifest-path fuzz/Cargo.toml -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Every tier: the pure tests, and the privileged ones (marked #[ignore]
# with their reason: root, BPF objects, etcd) that need this machine's
# setup and root; then the pure tier again as user nobody without clang
# (proof that it needs neither), and a short run of every fuzz target.
test: lint
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace -- --include-ignored --test-threads=2
	bash scripts/pure-tier.sh
	bash scripts/fuzz.sh 5

# Every fuzz target for FUZZ_SECONDS (default 300) each.
FUZZ_SECONDS ?= 300
fuzz: setup
	bash scripts/fuzz.sh $(FUZZ_SECONDS)

bench: build
	bash bench/lab-up.sh
	bash bench/cni-add.sh
	bash bench/pod-throughput.sh
	bash bench/tunnel-throughput.sh
	bash bench/agent-rss.sh
	bash bench/api-fanout.sh
	bash bench/api-scale.sh

# The Kubernetes API benchmarks alone: watch fan-out, then one agent's
# sync against a lab loaded with simulated objects.
bench-api: build
	bash bench/api-fanout.sh
	bash bench/api-scale.sh

clean:
	$(CARGO) clean
