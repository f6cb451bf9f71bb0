set -x
export CTDEGRADBENCH_CACHE=/work/data/s28/cache
CT=/work/main/.venv/bin/ct-degradbench
date
$CT train --dataset big_build --out m_control --backbone none --ensemble 1 --seed 0 --no-progress > m_control.log 2>&1; echo rc=$?
date
$CT train --dataset big_build dlwpt_top --out m_top --backbone none --ensemble 1 --seed 0 --no-progress > m_top.log 2>&1; echo rc=$?
date
for m in m_control m_top model; do
  M=$m; [ $m = model ] && M=/work/main/model/checkpoint
  $CT evaluate --model $M --dataset dlwpt_bottom --split train --out ev_${m}_bottom.json > ev_${m}_bottom.log 2>&1; echo rc=$?
done
for m in m_control m_top; do
  $CT evaluate --model $m --dataset big_build --split test --out ev_${m}_test.json > ev_${m}_test.log 2>&1; echo rc=$?
  $CT evaluate --model $m --dataset big_build --split validation --out ev_${m}_val.json > ev_${m}_val.log 2>&1; echo rc=$?
done
date
