# Convenience targets; the scripts do the work (and work without make).
.PHONY: setup run test bench
setup:
	bash scripts/setup.sh --test
run:
	bash scripts/run.sh
test:
	bash scripts/test.sh
bench:
	bash scripts/bench.sh
