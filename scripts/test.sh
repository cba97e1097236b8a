#!/usr/bin/env bash
# Every test of the collection: unit and integration tests (real redis-server and PostgreSQL
# on loopback, playbooks through ansible-runner), ansible-doc and ansible-lint, ansible-test
# sanity, the Molecule rehearsals in a private Docker engine, and the execution environment built
# there with the drills that prove it run inside it.
#
# How the two cores are used (docs/testing.md measures it):
#   foreground   pytest, its tests spread over $PYTEST_WORKERS pytest-xdist workers (one file per
#                worker at a time: a file's servers and module fixtures stay on its worker)
#   background   the execution environment's build, then the drills not already run by pytest
#                (redis, kill-switch) inside the image (pytest drills the front door there), then the Molecule rehearsals,
#                one after the other; ansible-test sanity beside them; their logs are printed after pytest
# It prints pytest's slowest tests, where the test time went (scripts/test_times.py), each step's
# time and the total beside the machine's speed before and after the run (bench/machine_speed.py),
# and warns in its last line when the whole run passed 30 minutes.
# SKIP_DOCKER=1, SKIP_MOLECULE=1, SKIP_SANITY=1, SKIP_EE=1 leave parts out (for development);
# PYTEST_WORKERS (default 3; 0 = no xdist) and REHEARSE_JOBS (default 1) set the parallelism.
# Called by ./dr.sh test after scripts/setup.sh; .ci/run calls ./dr.sh test.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)
VENV=${VENV:-$ROOT/.venv}
export PATH="$VENV/bin:$PATH" ANSIBLE_CONFIG="$ROOT/ansible.cfg"
STARTED=${TRADEOPS_DR_TEST_STARTED:-$(date +%s)}
BUDGET=${TRADEOPS_DR_TEST_BUDGET:-1800}

status=0
since() { echo $(( $(date +%s) - STARTED )); }
step() { echo; echo "=== $* (at $(since) s)"; }

want_docker=0; [ "${SKIP_DOCKER:-0}" != 1 ] && want_docker=1
want_rehearse=0; [ $want_docker = 1 ] && [ "${SKIP_MOLECULE:-0}" != 1 ] && want_rehearse=1
want_sanity=0; [ "${SKIP_SANITY:-0}" != 1 ] && want_sanity=1
want_ee=0; [ $want_docker = 1 ] && [ "${SKIP_EE:-0}" != 1 ] && want_ee=1

# Process accounting for the whole run (TRADEOPS_DR_CPU_ACCOUNTING=1, as root; CI sets it): every process that
# ends is counted in .state/pacct, and scripts/cpu_report.py says at the end where the machine's CPU went.
accounting=0
if [ "${TRADEOPS_DR_CPU_ACCOUNTING:-0}" = 1 ]; then
  mkdir -p .state && rm -f .state/pacct && touch .state/pacct && chmod 0600 .state/pacct
  if [ "$(id -u)" = 0 ] && command -v accton >/dev/null && accton "$ROOT/.state/pacct" >/dev/null; then
    accounting=1
  else
    echo "test.sh: no CPU report: process accounting needs root and Debian's acct package (accton)" >&2
  fi
fi
accounting_off() { if [ $accounting = 1 ]; then accton off >/dev/null 2>&1; fi; accounting=0; }

# The machine's speed before anything starts and after everything ended (bench/machine_speed.py): the same fixed
# work, so that a run's time can be told apart from a slower machine (the same code's CPU moved by half in a day)
step "the machine's speed before the run (bench/machine_speed.py)"
mkdir -p .state && rm -f .state/speed-start.json
python bench/machine_speed.py --json .state/speed-start.json || true

# The tests' bytecode cache for the code modules import from their AnsiballZ payloads (src/tradeops_dr/
# payload_bytecode.py, through the .pth scripts/setup.sh puts in the venv): zipimport compiles that code at every
# module run otherwise, ~40 % of a module run's CPU. A new folder each run, this account's alone.
export TRADEOPS_DR_PAYLOAD_BYTECODE=$ROOT/.state/payload-bytecode
rm -rf "$TRADEOPS_DR_PAYLOAD_BYTECODE" && mkdir -m 0700 "$TRADEOPS_DR_PAYLOAD_BYTECODE"
# And the payloads themselves (src/tradeops_dr/ansiballz_cache.py, its .pth likewise): ansible-core builds a module's
# payload (parses it and every module_utils file it imports, zips them) once per ansible-playbook run and throws it
# away at the run's end; the tests' ~770 runs keep them here, each under a digest of the sources it was built from.
export TRADEOPS_DR_ANSIBALLZ_CACHE=$ROOT/.state/ansiballz-cache
rm -rf "$TRADEOPS_DR_ANSIBALLZ_CACHE" && mkdir -m 0700 "$TRADEOPS_DR_ANSIBALLZ_CACHE"
trap accounting_off EXIT  # with Docker, the engine's trap below calls it too

if [ $want_docker = 1 ]; then
  step "private Docker engine and the locally built base image"
  eval "$(bash scripts/docker-engine.sh env)"
  trap 'bash scripts/docker-engine.sh stop; accounting_off' EXIT
  bash scripts/docker-engine.sh image || exit 1
  export TRADEOPS_DR_REQUIRE_DOCKER=1
fi

# The background chain: each part's log and exit code under .state/background, printed after pytest.
BG=.state/background
rm -rf "$BG" && mkdir -p "$BG"
bg_part() {  # NAME COMMAND...: run it, keep its log, exit code and time
  local name=$1 t0
  shift
  t0=$(date +%s)
  "$@" >"$BG/$name.log" 2>&1
  echo $? >"$BG/$name.rc"
  echo $(( $(date +%s) - t0 )) >"$BG/$name.seconds"
}
# The drills pytest does not run on this host (it runs questdb, model, config, fileset, broker, pms,
# feed, trading and database) run inside the image: each drill once per run, and the image
# proven on the Redis recovery and the kill switch here, and on the front door (full) by pytest's
# test_drills.py, which waits for the image's build (TRADEOPS_DR_EE_BUILD_RC) and drills it there on
# a sandbox without QuestDB (issue 31's proof) - one full drill per run instead of two.
EE_DRILLS=(redis kill-switch)
# three workers on the two cores: the tests wait ~11 % of their time (Prometheus' scrapes and rules, Alertmanager, Dagster
# and Airflow, the image's build for the drill inside it), and once the background chain ends two workers left a core
# idle while one of them waited (stop 50); a third runs while another waits
workers=${PYTEST_WORKERS:-3}
# pytest's workers take port slices 0..workers-1 of workers+1; the drills in the image the last one
export TRADEOPS_DR_PORT_SLICES=$(( (workers > 0 ? workers : 1) + 1 ))
# shellcheck disable=SC2317  # called through bg_part "$@", which shellcheck cannot follow
ee_drills() {
  local sandbox rc
  sandbox=$(mktemp -d /tmp/tradeops-ee-sandbox.XXXXXX)
  chmod 0755 "$sandbox"  # PostgreSQL runs as the postgres user under root
  TRADEOPS_DR_PORT_SLICE="$(( TRADEOPS_DR_PORT_SLICES - 1 ))/$TRADEOPS_DR_PORT_SLICES" \
    TRADEOPS_DR_SANDBOX=$sandbox bash scripts/ee.sh drill "${EE_DRILLS[@]}"
  rc=$?
  TRADEOPS_DR_SANDBOX=$sandbox tradeops-dr sandbox down >/dev/null 2>&1
  rm -rf "$sandbox"
  return "$rc"
}

bg_pid=
if [ $want_ee = 1 ] || [ $want_rehearse = 1 ] || [ $want_sanity = 1 ]; then
  strict=()
  [ "${CI:-}" = true ] && strict=(--strict)
  step "started in the background:$([ $want_ee = 1 ] && echo " execution environment build, drills ${EE_DRILLS[*]} inside it,")$([ $want_rehearse = 1 ] && echo ' Molecule rehearsals,')$([ $want_sanity = 1 ] && echo ' ansible-test sanity') (logs after pytest)"
  (
    # sanity needs nothing the others make: beside them from the start, not after them - last in the chain, it ran
    # alone once pytest had ended, on one core of two (stop 52: 32 s at 51 % busy at the end of a run)
    [ $want_sanity = 1 ] && bg_part sanity bash scripts/sanity.sh &
    [ $want_ee = 1 ] && bg_part ee-build bash -c 'bash scripts/ee.sh build && bash scripts/ee.sh info'
    # the drills pytest does not run on this host run inside the image, in a port slice of their own
    [ $want_ee = 1 ] && [ "$(cat "$BG/ee-build.rc")" = 0 ] && bg_part ee-drills ee_drills
    [ $want_rehearse = 1 ] && bg_part rehearse tradeops-dr rehearse all --jobs "${REHEARSE_JOBS:-1}" "${strict[@]}"
    wait
  ) &
  bg_pid=$!
fi

# pytest's full drill runs inside the image once it is built (tests/integration/test_drills.py)
[ $want_ee = 1 ] && export TRADEOPS_DR_EE_BUILD_RC=$ROOT/$BG/ee-build.rc
step "pytest: unit, integration, collection checks"
xdist=()
# --no-loadscope-reorder: the files in the order tests/conftest.py gives them (slowest first), not by test count
[ "$workers" != 0 ] && xdist=(-n "$workers" --dist loadfile --no-loadscope-reorder)
mkdir -p .state
pytest -p no:cacheprovider "${xdist[@]}" --durations=30 --durations-min=1 --junitxml=.state/pytest-junit.xml tests "$@"
rc=$?
if [ $rc -eq 5 ]; then
  echo "test.sh: pytest collected no tests: that is a failure" >&2
  rc=1
fi
[ $rc -eq 0 ] || status=$rc
step "where the test time went (scripts/test_times.py)"
python scripts/test_times.py --files 15 --fixtures 10 || true

if [ -n "$bg_pid" ]; then
  step "waiting for the background steps (started before pytest)"
  wait "$bg_pid"
  for part in ee-build ee-drills rehearse sanity; do
    case $part in
      ee-build) want=$want_ee; title="execution environment build" ;;
      ee-drills) want=$want_ee; title="drills ${EE_DRILLS[*]} inside the image" ;;
      rehearse) want=$want_rehearse; title="Molecule rehearsals (tradeops-dr rehearse all)" ;;
      sanity) want=$want_sanity; title="ansible-test sanity" ;;
    esac
    [ "$want" = 1 ] || continue
    step "$title - its output ($(cat "$BG/$part.seconds" 2>/dev/null || echo '?') s in the background)"
    cat "$BG/$part.log" 2>/dev/null || echo "test.sh: the background step $part left no log" >&2
    part_rc=$(cat "$BG/$part.rc" 2>/dev/null || echo 1)
    [ "$part_rc" = 0 ] || { echo "test.sh: $title failed (rc $part_rc)" >&2; status=1; }
  done
fi

if [ $accounting = 1 ]; then
  accounting_off
  step "where the machine's CPU went (scripts/cpu_report.py, process accounting)"
  python scripts/cpu_report.py .state/pacct || true
fi

step "the machine's speed after the run (bench/machine_speed.py; its last line beside the one before the run)"
python bench/machine_speed.py --before .state/speed-start.json || true

total=$(since)
echo
echo "test.sh: $([ $status = 0 ] && echo passed || echo FAILED) - the whole run took $total s ($((total / 60)) min $((total % 60)) s; budget $((BUDGET / 60)) min)"
if [ "$total" -gt "$BUDGET" ]; then
  echo "test.sh: WARNING: the run took $((total / 60)) min, over its $((BUDGET / 60))-minute budget: find the slow part above (pytest's slowest tests, where the test time went, each step's time) before adding more"
fi
exit $status
