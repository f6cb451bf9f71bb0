export CTDEGRADBENCH_CACHE=/work/data/s28/cache
CT=/work/main/.venv/bin/ct-degradbench
date
$CT train --dataset big_build noisy_build --out m_noisy --backbone none --ensemble 1 --seed 0 --no-progress > m_noisy.log 2>&1; echo train rc=$?
date
$CT evaluate --model m_noisy --dataset dlwpt_bottom --split train --out ev_m_noisy_bottom.json > ev_m_noisy_bottom.log 2>&1; echo rc=$?
$CT evaluate --model m_noisy --dataset big_build --split test --out ev_m_noisy_test.json > ev_m_noisy_test.log 2>&1; echo rc=$?
$CT evaluate --model m_noisy --dataset big_build --split validation --out ev_m_noisy_val.json > ev_m_noisy_val.log 2>&1; echo rc=$?
date
/work/main/.venv/bin/python /work/main/benchmarks/real_artifacts.py --max-clean-per-volume 4 --model m_control m_top m_noisy --labels control top noisy --json ra3.json > ra3.log 2>&1; echo ra rc=$?
date
