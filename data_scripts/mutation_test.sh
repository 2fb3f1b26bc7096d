#!/usr/bin/env bash
# Mutation testing (mutmut 3) of the code where a one-line bug matters most: gfd/losses.py,
# gfd/checkpoint.py, gfd/data.py and the trainer's step functions in gfd/train.py.
#
#   pip install "mutmut>=3.8,<4"
#   bash data_scripts/mutation_test.sh              # all of them (about an hour on 2 CPU cores)
#   bash data_scripts/mutation_test.sh gfd.losses   # one module (mutant-name prefix)
#   bash data_scripts/mutation_test.sh gfd.data.x_to_rgb__mutmut_4 ...   # re-check given mutants
#
# It works on a scratch copy (default /tmp/gfd-mutation; set MUTATION_DIR to change it), so the
# working tree is never touched; each mutant runs with one thread (JOBS=N runs N in parallel, default 1).
# The configuration (files, test selection) is data_scripts/mutmut.cfg.  At the end it prints each
# module's score (killed / (killed + survived + no-test)) and the surviving mutants; inspect one with
#   cd "$MUTATION_DIR" && mutmut show <mutant name>
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=${MUTATION_DIR:-/tmp/gfd-mutation}
jobs=${JOBS:-1}

rm -rf "$work"
mkdir -p "$work"
cp -r "$repo/gfd" "$repo/tests" "$repo/conftest.py" "$repo/pyproject.toml" "$work/"
cp "$repo/data_scripts/mutmut.cfg" "$work/setup.cfg"
find "$work" -name __pycache__ -prune -exec rm -rf {} +

# the trainer: only what runs in each iteration (G step, D/C step, Eq. 7 terms, updates, fixed D/C)
trainer=(g_step dc_step train_step generator_terms _update)
patterns=("gfd.losses.*" "gfd.checkpoint.*" "gfd.data.*" "gfd.train.x_fixed__mutmut_*")
for fn in "${trainer[@]}"; do patterns+=("gfd.train.xǁTrainerǁ${fn}__mutmut_*"); done
if [ $# -gt 0 ]; then       # module prefixes (gfd.losses), or exact mutant names to re-check
    wanted=()
    for arg in "$@"; do
        if [[ "$arg" == *__mutmut_* ]]; then wanted+=("$arg"); continue; fi
        for p in "${patterns[@]}"; do [[ "$p" == "$arg"* ]] && wanted+=("$p"); done
    done
    patterns=("${wanted[@]}")
fi

cd "$work"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 TQDM_DISABLE=1
nice -n 10 mutmut run --max-children "$jobs" "${patterns[@]}" > mutmut.log 2>&1 || {
    echo "mutmut failed; the end of $work/mutmut.log:"; tail -40 mutmut.log; exit 1; }

python - "${patterns[@]}" <<'PY'
import fnmatch, json, pathlib, sys
from mutmut.stats import status_by_exit_code
patterns = sys.argv[1:]
by_module, survivors = {}, []
for meta in sorted(pathlib.Path("mutants").rglob("*.py.meta")):
    for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
        if not any(fnmatch.fnmatch(name, p) for p in patterns):
            continue
        verdict = status_by_exit_code[code]
        counts = by_module.setdefault(".".join(name.split(".")[:2]), {})
        counts[verdict] = counts.get(verdict, 0) + 1
        if verdict not in ("killed", "timeout"):
            survivors.append(f"{verdict:12s} {name}")
# score = detected / all: a timeout counts as detected, "no tests" and "not checked" as missed
total_k = total = 0
for module, counts in sorted(by_module.items()):
    k = counts.get("killed", 0) + counts.get("timeout", 0)
    n = sum(counts.values())
    total_k, total = total_k + k, total + n
    print(f"{module:16s} {k:4d} / {n:4d} = {100 * k / max(n, 1):5.1f} %   {counts}")
print(f"{'all':16s} {total_k:4d} / {total:4d} = {100 * total_k / max(total, 1):5.1f} %")
print("\n".join(sorted(survivors)))
PY
