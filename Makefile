# katotune: common tasks. `make test` is the command CI runs (.ci/run).
CARGO ?= cargo
STATIC_TARGET := x86_64-unknown-linux-gnu
STATIC_DIR ?= target/static

.PHONY: build test lint bench run static fmt test-images

build:
	$(CARGO) build --release --locked

# With a Docker engine, the end-to-end tests need katotune's engine image, built from
# a static katotune: build it first and point the tests at it.
test:
	@if [ -S /var/run/docker.sock ] || [ -n "$$DOCKER_HOST" ]; then \
		$(MAKE) static && \
		KATOTUNE_STATIC_BINARY=$(abspath $(STATIC_DIR))/$(STATIC_TARGET)/release/katotune \
			$(CARGO) test --locked --no-fail-fast; \
	else \
		echo "no Docker engine: the docker tests will say they are skipped"; \
		$(CARGO) test --locked --no-fail-fast; \
	fi

# The images of the KATO-shaped test stack (profile docker-stores): Redis from Debian
# packages and the ClickHouse engine behind its HTTP interface. Needs root and
# debootstrap; present images are reused (about 2.5 minutes from nothing).
test-images:
	scripts/test-images.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

bench:
	$(CARGO) bench --locked --bench engine --bench training --bench fast_path --bench kb_load --bench kb_scale

# The main job on the embedded default (no Docker, no network): the seed plan's
# phases side by side on the shipped corpus, with an HTML report. In-process a run of
# the 100 chapters takes about 0.1 s, so up to 60 runs meet the 3 s minimum time.
run:
	$(CARGO) run --release --locked -- compare baseline phase1-batched phase2-tuned phase3-parallel \
		--warmup 1 --max-runs 60 --export-html runs/compare.html --export-markdown runs/compare.md \
		--export-json runs/compare.json

# A fully static katotune for the FROM-scratch engine image.
static:
	RUSTFLAGS="-C target-feature=+crt-static" CARGO_TARGET_DIR=$(STATIC_DIR) \
		$(CARGO) build --release --locked --target $(STATIC_TARGET)

fmt:
	$(CARGO) fmt --all
