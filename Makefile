# Set-up and entry points of the reproduction.
#
#   make all       set everything up, then run every notebook into scratch/results (python -m paperlib.run_all)
#   make publish   the same, into the committed results/ (on purpose only: it changes the evidence)
#   make reproduce retrain everything in a cache of its own, nothing reused; prints its estimate first
#   make test    set everything up, then run the test suite
#   make setup   only the set-up; every step is skipped when already done
#
# Set-up steps (each prints one line saying done or skipped):
#   apt      Debian packages with the offline assets (installed only if missing)
#   python   virtual environment .venv with requirements.txt and this package (editable)
#   npm      emoji artwork packages pinned in paperlib/assets_npm.json -> .assets/npm
#   wordnet  Debian's WordNet copied into .assets/nltk_data for NLTK, then verified
# A step's stamp file carries a hash of its inputs, so editing requirements.txt,
# pyproject.toml, assets_npm.json or paperlib/assets.py re-runs just that step.
#
# To use another interpreter (e.g. the conda env of environment.yml) instead of .venv:
#   make setup PY=python

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.ONESHELL:
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

ROOT   := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
PYTHON ?= python3
VENV   ?= $(ROOT)/.venv
PY     ?= $(VENV)/bin/python
ASSETS ?= $(or $(PAPERLIB_ASSETS),$(ROOT)/.assets)
NPM    ?= npm

# Debian packages the project needs; extend here (e.g. a system library some module loads).
APT_PACKAGES ?= fonts-noto-color-emoji tuxpaint-stamps-default dataset-fashion-mnist \
                wordnet-base wordnet-sense-index

NPM_SPEC    := $(ROOT)/paperlib/assets_npm.json
NPM_DIR     := $(ASSETS)/npm
WORDNET_SRC ?= /usr/share/wordnet
NLTK_DIR    := $(ASSETS)/nltk_data

TEST_WORKERS ?= 2
PYTEST_ARGS  ?=
RUN_ARGS     ?=
PIP_FLAGS    ?= $(if $(CI),--progress-bar off,)

# Hashes of each step's inputs (16 hex digits are plenty to tell versions apart).
hash = $(shell cat $(1) 2>/dev/null | sha256sum | cut -c1-16)
PIP_HASH     := $(call hash,$(ROOT)/requirements.txt $(ROOT)/pyproject.toml)
NPM_HASH     := $(call hash,$(NPM_SPEC))
WORDNET_HASH := $(shell { cat $(ROOT)/paperlib/assets.py; ls -l --time-style=+%s $(WORDNET_SRC) 2>/dev/null || true; } | sha256sum | cut -c1-16)

# Offline behaviour for every recipe (values already in the environment win).
YOLO_OFFLINE     ?= 1
YOLO_AUTOINSTALL ?= 0
YOLO_CONFIG_DIR  ?= $(ASSETS)/ultralytics
NLTK_DATA        ?= $(NLTK_DIR)
HF_HUB_OFFLINE   ?= 1
PAPERLIB_ASSETS  := $(ASSETS)
export YOLO_OFFLINE YOLO_AUTOINSTALL YOLO_CONFIG_DIR NLTK_DATA HF_HUB_OFFLINE PAPERLIB_ASSETS
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help all publish reproduce test setup apt python npm wordnet dirs check clean distclean

help:
	@echo "make all       set up, then run every notebook into scratch/results (committed results/ untouched)"
	echo "make publish   set up, then run every notebook into the committed results/ (on purpose only)"
	echo "make reproduce set up, then retrain everything from scratch (prints its estimate first)"
	echo "make test   set up, then run the tests (pytest -n $(TEST_WORKERS))"
	echo "make setup  set up only: apt packages, .venv, npm assets, WordNet (each skipped when done)"
	echo "make check  list which offline assets are present"
	echo "make clean  delete the artifact cache (.cache); make distclean also deletes .venv and .assets"

all: setup
	@cd $(ROOT)
	$(PY) -m paperlib.run_all $(RUN_ARGS)

publish: setup
	@cd $(ROOT)
	$(PY) -m paperlib.run_all --publish $(RUN_ARGS)

reproduce: setup
	@cd $(ROOT)
	$(PY) -m paperlib.run_all --reproduce $(RUN_ARGS)

test: setup
	@cd $(ROOT)
	$(PY) -m pytest -q -n $(TEST_WORKERS) $(PYTEST_ARGS) tests

setup: apt python npm wordnet dirs
	@echo "[setup] complete"

# --- Debian packages --------------------------------------------------------
# dpkg-query (not `dpkg -s`, which also succeeds for removed packages) decides
# what is missing; the package lists are refreshed only when something is.
apt:
	@missing=""
	for p in $(APT_PACKAGES); do
	  dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"
	done
	if [ "$(PY)" = "$(VENV)/bin/python" ] && [ ! -x "$(PY)" ] && ! $(PYTHON) -c "import ensurepip" >/dev/null 2>&1; then
	  missing="$$missing python3-venv"   # Debian's python3 cannot create a venv without it
	fi
	command -v $(NPM) >/dev/null 2>&1 || missing="$$missing npm"
	if [ -z "$$missing" ]; then
	  echo "[setup] apt: skipped (all packages present)"
	  exit 0
	fi
	if ! command -v apt-get >/dev/null 2>&1; then
	  echo "[setup] apt: cannot install$$missing (no apt-get); install them by hand" >&2
	  exit 1
	fi
	sudo=""; [ "$$(id -u)" = 0 ] || sudo="sudo"
	echo "[setup] apt: installing$$missing"
	$$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing >/dev/null
	echo "[setup] apt: done"

# --- Python environment -----------------------------------------------------
# The stamp lives inside the environment (sys.prefix), so deleting .venv or
# switching PY re-runs the install.
python: apt
	@if [ "$(PY)" = "$(VENV)/bin/python" ] && [ ! -x "$(PY)" ]; then
	  echo "[setup] python: creating virtual environment $(VENV)"
	  $(PYTHON) -m venv "$(VENV)"
	fi
	prefix="$$("$(PY)" -c 'import sys; print(sys.prefix)')"
	stamp="$$prefix/.stamp-pip-$(PIP_HASH)"
	if [ -f "$$stamp" ]; then
	  echo "[setup] python: skipped ($(PY) up to date with requirements.txt)"
	  exit 0
	fi
	cd $(ROOT)
	"$(PY)" -m pip install $(PIP_FLAGS) -r requirements.txt
	"$(PY)" -m pip install $(PIP_FLAGS) --no-deps -e .
	rm -f "$$prefix"/.stamp-pip-*
	touch "$$stamp"
	echo "[setup] python: done (requirements.txt and paperlib installed into $$prefix)"

# --- npm artwork packages ---------------------------------------------------
npm: apt
	@stamp="$(NPM_DIR)/.stamp-npm-$(NPM_HASH)"
	if [ -f "$$stamp" ] && [ -d "$(NPM_DIR)/node_modules" ]; then
	  echo "[setup] npm: skipped (packages in $(NPM_DIR) up to date)"
	  exit 0
	fi
	mkdir -p "$(NPM_DIR)"
	cp "$(NPM_SPEC)" "$(NPM_DIR)/package.json"
	$(NPM) install --prefix "$(NPM_DIR)" --no-audit --no-fund --loglevel=error
	rm -f "$(NPM_DIR)"/.stamp-npm-*
	touch "$$stamp"
	echo "[setup] npm: done (versions pinned in paperlib/assets_npm.json)"

# --- WordNet for NLTK -------------------------------------------------------
wordnet: apt python
	@stamp="$(NLTK_DIR)/.stamp-wordnet-$(WORDNET_HASH)"
	if [ -f "$$stamp" ] && [ -f "$(NLTK_DIR)/corpora/wordnet/lexnames" ]; then
	  echo "[setup] wordnet: skipped (NLTK corpus in $(NLTK_DIR) up to date)"
	  exit 0
	fi
	cd $(ROOT)
	"$(PY)" -m paperlib.assets setup-wordnet
	rm -f "$(NLTK_DIR)"/.stamp-wordnet-*
	touch "$$stamp"
	echo "[setup] wordnet: done"

dirs:
	@if [ -d "$(YOLO_CONFIG_DIR)" ]; then
	  echo "[setup] dirs: skipped ($(YOLO_CONFIG_DIR) exists)"
	else
	  mkdir -p "$(YOLO_CONFIG_DIR)"
	  echo "[setup] dirs: done (created $(YOLO_CONFIG_DIR))"
	fi

# --- Utilities --------------------------------------------------------------
check: python
	@cd $(ROOT)
	"$(PY)" -m paperlib.assets check

clean:
	rm -rf "$(ROOT)/.cache"

distclean: clean
	rm -rf "$(VENV)" "$(ASSETS)"
