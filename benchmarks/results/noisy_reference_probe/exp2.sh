export CTDEGRADBENCH_CACHE=/work/data/s28/cache
CT=/work/main/.venv/bin/ct-degradbench
date
$CT train --dataset big_build dlwpt_top --out m_top --backbone none --ensemble 1 --seed 0 --no-progress > m_top.log 2>&1; echo train rc=$?
date
$CT evaluate --model m_top --dataset dlwpt_bottom --split train --out ev_m_top_bottom.json > ev_m_top_bottom.log 2>&1; echo rc=$?
$CT evaluate --model m_top --dataset big_build --split test --out ev_m_top_test.json > ev_m_top_test.log 2>&1; echo rc=$?
$CT evaluate --model m_top --dataset big_build --split validation --out ev_m_top_val.json > ev_m_top_val.log 2>&1; echo rc=$?
date
