# Two commands from a fresh clone (Python >= 3.10): each sets up what is missing in .venv (torch,
# this package and its test dependencies; see tools/setup.sh), then runs.
#   make demo    separate the bundled demo mixture into out/demo (sources, figure, scores)
#   make test    the test suite, as CI runs it (make test ARGS='-m "not slow"' for a quick loop)
#   make setup   set up only

OUT ?= out/demo
ARGS ?=

.PHONY: demo test setup

demo:
	@sh tools/setup.sh demo $(OUT)

test:
	@sh tools/setup.sh test $(ARGS)

setup:
	@sh tools/setup.sh
