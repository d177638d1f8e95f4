# katotune: common tasks. `make test` is the command CI runs (.ci/run).
CARGO ?= cargo
STATIC_TARGET := x86_64-unknown-linux-gnu
STATIC_DIR ?= target/static

.PHONY: build test lint bench run image fmt

build:
	$(CARGO) build --release --locked

test:
	$(CARGO) test --locked --no-fail-fast

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

bench:
	$(CARGO) bench --locked

# The main job on the embedded default: no Docker, no network.
run:
	$(CARGO) run --release --locked -- run phase3-parallel --fresh

# A fully static katotune for the FROM-scratch engine image.
static:
	RUSTFLAGS="-C target-feature=+crt-static" CARGO_TARGET_DIR=$(STATIC_DIR) \
		$(CARGO) build --release --locked --target $(STATIC_TARGET)

fmt:
	$(CARGO) fmt --all
