# Shortcuts; the scripts in tools/ are the source of truth (the README uses them).
.PHONY: demo test bench
demo:
	tools/demo
test:
	tools/test
bench:
	tools/bench
