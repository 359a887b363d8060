# Two entry points for a fresh machine (see README): `make demo` and `make test`.
# Both create .venv on first use; torch resolves to the pinned 2.13.0 CPU wheel.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "mcdenoise needs Python 3.11 (bpy 5.0 wheels are 3.11-only); run: make PYTHON=python3.11 ..."'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $@

install: $(VENV)/.installed

# The add-on is also tested on the oldest Blender its manifest claims and on the newest LTS
# before .venv's (tests/test_addon.py): bpy and numpy only, no torch, since those tests
# run the model through the add-on's External Python backend, i.e. .venv's mcdenoise.
BPY_VENVS := .venv-bpy42/.installed .venv-bpy45/.installed

.venv-bpy%/.installed: tests/requirements-bpy%.txt
	rm -rf $(@D)
	$(PYTHON) -m venv $(@D)
	$(@D)/bin/python -m pip install --quiet --disable-pip-version-check -r $<
	touch $@

demo: install
	mkdir -p out
	$(BIN)/mcdenoise denoise examples/suzanne_4spp.exr -o out/suzanne_denoised.exr --preview out/suzanne_side_by_side.png

# pytest exits 5 when it collected no test; make then fails, so an empty run never passes.
test: install $(BPY_VENVS)
	$(BIN)/python -m pytest
