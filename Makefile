# The front door: `make test` and `make demo` set up everything they need on a fresh machine
# with only Python and the package registries.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SAM_VENV := .venv-sam
SAM := $(SAM_VENV)/bin/sam
CHECKOV_VENV := .venv-checkov

.DEFAULT_GOAL := setup
.PHONY: setup test demo bench lint build clean project-token mutants local-services invoke invoke-local doctor smoke smoke-local onboard

# `make` alone: both virtualenvs (the functions' and tests' packages; the SAM CLI).
setup: $(VENV)/.installed $(SAM_VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	@echo "== installing the functions' and tests' Python packages into $(VENV) (a minute or two, once)"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# aws-sam-cli pins its own boto3, so it gets a virtualenv of its own.
$(SAM_VENV)/.installed: requirements-sam.txt
	@echo "== installing aws-sam-cli into $(SAM_VENV) (a minute or two, once)"
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-sam.txt
	touch $@

test: $(VENV)/.installed $(SAM_VENV)/.installed
	@echo "== running the tests on 2 workers (about 12 minutes on 2 cores)"
	SAM_CLI=$(abspath $(SAM)) $(PY) -m pytest -n 2

demo: $(VENV)/.installed
	$(PY) -m local.demo

bench: $(VENV)/.installed $(SAM_VENV)/.installed
	SAM_CLI=$(abspath $(SAM)) $(PY) -m bench

# checkov pins an old boto3, so it too gets a virtualenv of its own.
$(CHECKOV_VENV)/.installed: requirements-checkov.txt
	@echo "== installing checkov into $(CHECKOV_VENV) (a minute or two, once)"
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-checkov.txt
	touch $@

# Every checkov skip is justified where it is made (Metadata.checkov in template.yaml).
lint: $(VENV)/.installed $(SAM_VENV)/.installed $(CHECKOV_VENV)/.installed
	@echo "== lint: ruff over all the repository's Python, mypy (functions, tools), cfn-lint, sam validate, checkov, IAM against AWS's reference"
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/cfn-lint template.yaml
	SAM_CLI_TELEMETRY=0 $(SAM) validate --lint
	BC_SKIP_MAPPING=TRUE $(CHECKOV_VENV)/bin/checkov -f template.yaml --framework cloudformation --compact --quiet
	SAM_CLI=$(abspath $(SAM)) $(PY) -m tools.iam

# The local AWS emulator and GitLab stand-in for `sam local invoke` (Docker): keeps running, writes
# events/local-env.json. Then, in another shell: make invoke FUNCTION=WebhookFunction EVENT=webhook_note.json
local-services: $(VENV)/.installed
	$(PY) -m local.services

invoke: $(SAM_VENV)/.installed
	@test -n "$(FUNCTION)" -a -n "$(EVENT)" || { echo "usage: make invoke FUNCTION=<logical id> EVENT=<file in events/> (make local-services running; Docker needed)" >&2; exit 2; }
	@test -f events/local-env.json || { echo "events/local-env.json is missing: start make local-services first" >&2; exit 2; }
	AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1 SAM_CLI_TELEMETRY=0 \
	  $(SAM) local invoke $(FUNCTION) -e events/$(EVENT) --env-vars events/local-env.json \
	  --parameter-overrides GitLabUrl=http://host.docker.internal:8929 ReviewAppAccess=members

# The same, without Docker: the function runs in this process with the environment SAM CLI resolves for it.
invoke-local: $(VENV)/.installed $(SAM_VENV)/.installed
	@test -n "$(FUNCTION)" -a -n "$(EVENT)" || { echo "usage: make invoke-local FUNCTION=<logical id> EVENT=<file in events/> (make local-services running)" >&2; exit 2; }
	@$(PY) -m local.invoke_local $(FUNCTION) $(EVENT)

# sam build needs the Lambda runtime's Python (3.13) on PATH, e.g. from pyenv.
build: $(SAM_VENV)/.installed
	$(SAM) build

# Mutation testing of the pure core (slow; not in CI): prints the share of mutants the unit tests kill.
mutants: $(VENV)/.installed
	$(PY) -m tools.mutants

# Check a deployed install (AWS credentials for its account): make doctor [STACK=…] [PROJECT=group/name]
# (STACK defaults to samconfig.toml's stack_name; LOCAL=1: the install make local-services runs)
doctor: $(VENV)/.installed
	@$(PY) -m tools.doctor $(if $(STACK),--stack $(STACK)) $(if $(PROJECT),--project $(PROJECT)) $(if $(LOCAL),--local)

# Prove a deployed install works: one MR's life through the real GitLab and AWS (tools/smoke.py).
smoke: $(VENV)/.installed
	@test -n "$(SMOKE_PROJECT)$(SMOKE_NAMESPACE)" || { echo "usage: make smoke SMOKE_PROJECT=group/name (a sandbox the bot may write to) or SMOKE_NAMESPACE=group [STACK=…] [SMOKE_IMAGE=…]" >&2; exit 2; }
	@$(PY) -m tools.smoke $(if $(STACK),--stack $(STACK))

# The same smoke test against a local world it starts and stops itself (moto, the GitLab stand-in, the local ALB).
smoke-local: $(VENV)/.installed
	@$(PY) -m local.smoke_local

# Set a project up for review apps: make onboard PROJECT=group/name [DRY_RUN=1] [FAMILY=<task definition family>]
# (MAINTAINER_TOKEN=glpat-… in the environment, for this run only, where the bot may not add hooks or members)
onboard: $(VENV)/.installed
	@test -n "$(PROJECT)" || { echo "usage: make onboard PROJECT=group/name [DRY_RUN=1] [STACK=…] (MAINTAINER_TOKEN=… in the environment where needed)" >&2; exit 2; }
	@$(PY) -m tools.onboard $(PROJECT) $(if $(STACK),--stack $(STACK)) $(if $(DRY_RUN),--dry-run) $(if $(FAMILY),--family $(FAMILY))

# The webhook token for one project's own hook: make project-token PROJECT=42 [ROTATE=1] [STACK=…]
# (the table and the secret's parameter come from the stack, or TABLE_NAME and SECRET_PARAMETER;
# ROTATE=1 revokes the old token at once).
project-token: $(VENV)/.installed
	@test -n "$(PROJECT)" || { echo "usage: make project-token PROJECT=<numeric project id> [ROTATE=1] [STACK=…]" >&2; exit 2; }
	@$(PY) -m tools.project_token $(PROJECT) $(if $(STACK),--stack $(STACK)) $(if $(SECRET_PARAMETER),--secret-parameter $(SECRET_PARAMETER)) $(if $(ROTATE),--rotate)

clean:
	rm -rf $(VENV) $(SAM_VENV) $(CHECKOV_VENV) .mutation .aws-sam .pytest_cache .hypothesis
