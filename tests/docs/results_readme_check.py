#!/usr/bin/env python3
"""Lists every group, dataset and attribute of results files that results/README.md does not name.

Usage: results_readme_check.py README.md RESULTS.h5 ... (run by tests/test_docs.cpp). Names are
checked in the README's generic form: a run key is <run>, a tap under similarity/ is <tap>, a metric
under state/ or provenance/ is <metric> (<m>_features for per-sample features), and
fid_fmnist/fid/sfid + _ci_low/_ci_high is <m>_ci_low/_ci_high. A leaf of another name must appear
in the README as a word. Prints "kind path" per undocumented name; exit 1 when there is any.
"""
import re
import sys

import h5py

readme = open(sys.argv[1]).read()
missing = set()
def words(name):
    return re.search(r'(?<![A-Za-z0-9_])' + re.escape(name) + r'(?![A-Za-z0-9_])', readme) is not None
def check(path, kind):
    parts = path.split('/')
    gen = []
    for i, p in enumerate(parts):
        if re.fullmatch(r'[0-9a-f]{16}(\.shard-\d+-of-\d+)?', p): p = '<run_id>'
        elif i > 0 and gen[-1] == 'similarity': p = '<tap>' + ('.fraction' if p.endswith('.fraction') else '')
        elif i > 0 and gen[-1] in ('state', 'provenance'): p = '<metric>' if not p.endswith('_features') else '<m>_features'
        else:
            m = re.fullmatch(r'(fid_fmnist|fid|sfid)(_ci_low|_ci_high)', p)
            if m: p = '<m>' + m.group(2)
        gen.append(p)
    leaf = gen[-1]
    if kind == 'attr':
        ok = words(leaf)
    elif leaf == '<run_id>':
        ok = 'runs/<run_id>' in readme
    elif leaf.startswith('<'):
        ok = ('/'.join(gen[-2:]) in readme)
    else:
        ok = words(leaf)
    if not ok: missing.add((kind, '/'.join(gen)))
for f in sys.argv[2:]:
    with h5py.File(f, 'r') as h:
        for a in h.attrs: check(a, 'attr')
        def visit(name, obj):
            check(name, 'dataset' if isinstance(obj, h5py.Dataset) else 'group')
            for a in obj.attrs: check(name + '/' + a, 'attr')
        h.visititems(visit)
for k, p in sorted(missing):
    print(k, p)
sys.exit(1 if missing else 0)
