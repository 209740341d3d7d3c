#!/bin/sh
# e2e/stats.sh — `qcalib stats` end to end on stories260K: the files, their shapes, the
# agreement of CSV and JSON and of the console summary with the CSV, the plots rendered from
# them, and refusals. (The figures themselves are checked in unit/calib_stats.c.)
. tests/lib.sh
echo "stats:"
png_ok() { [ "$(head -c 8 "$1" | od -An -c | tr -d ' \n')" = '211PNG\r\n032\n' ] && [ "$(wc -c <"$1")" -gt 10000 ]; }

$Q stats --model "$M" --calib "$CAL" --nsamples 8 --seqlen 256 --out "$T/st" >"$T/summary" 2>"$T/err"
check "stats exits 0" "[ $? -eq 0 ]"
check "weight_stats.csv: a row per matrix (embedding + 5 blocks x 7 linears)" "[ \$(wc -l <'$T/st/weight_stats.csv') -eq 37 ]"
check "act_stats.csv: a row per input channel of every site (5 x (64+64+64+172))" "[ \$(wc -l <'$T/st/act_stats.csv') -eq 1821 ]"
check "weight_hist.csv: 80 bins for each of the 8 module types" "[ \$(wc -l <'$T/st/weight_hist.csv') -eq 641 ]"
check "histogram counts add up to every weight of the q projections (5 x 64 x 64)" \
    "[ \$(awk -F, '\$1 == \"q\" { s += \$4 } END { print s }' '$T/st/weight_hist.csv') -eq 20480 ]"
std_csv=$(awk -F, '$1 == "model.layers.3.mlp.down_proj.weight" { print $9 }' "$T/st/weight_stats.csv")
check "stats.json holds the CSV's figures (block 3 down_proj std $std_csv)" \
    "grep -A12 '\"model.layers.3.mlp.down_proj.weight\"' '$T/st/stats.json' | grep -q '\"std\":[[:space:]]*$std_csv'"
kurt=$(awk -F, '$1 == "model.layers.3.self_attn.q_proj.weight" { printf "%.3f", $10 }' "$T/st/weight_stats.csv")
check "the summary prints the CSV's kurtosis of block 3 q_proj ($kurt)" \
    "grep 'model.layers.3.self_attn.q_proj.weight' '$T/summary' | grep -q ' $kurt '"
check "every activation site saw every token (8 x 256)" "[ \$(grep -c '\"tokens\":[[:space:]]*2048' '$T/st/stats.json') -eq 20 ]"

scripts/plot-weight-hist -o "$T/hist.png" "$T/st/weight_hist.csv" 2>"$T/err"
check "weight histogram plot is a valid PNG" "png_ok '$T/hist.png'"
scripts/plot-act-max -o "$T/act.png" --block 3 --site down "$T/st/act_stats.csv" 2>"$T/err"
check "activation max plot is a valid PNG" "png_ok '$T/act.png'"
expect_fail "plot-act-max refuses a site that does not exist" 2 "--site 'mlp'" scripts/plot-act-max -o "$T/x.png" --site mlp "$T/st/act_stats.csv"
expect_fail "plot-act-max refuses a block with no rows" 1 "no rows for block 9" scripts/plot-act-max -o "$T/x.png" --block 9 "$T/st/act_stats.csv"
expect_fail "plot-weight-hist refuses another CSV" 1 "not a qcalib weight_hist.csv" scripts/plot-weight-hist -o "$T/x.png" "$T/st/act_stats.csv"

$Q stats --model "$M" --out "$T/w" --quiet 2>"$T/err"
check "without calibration text: weights only, no act_stats.csv" "[ -f '$T/w/weight_stats.csv' ] && [ ! -e '$T/w/act_stats.csv' ] && ! grep -q activations '$T/w/stats.json'"
expect_fail "an existing output folder is refused before any work (a usage error)" 2 "already exists" $Q stats --model "$M" --out "$T/w"
expect_fail "a missing model is named" 1 "$T/none.bin" $Q stats --model "$T/none.bin" --out "$T/n"
expect_fail "--calib and --calib-tokens together are a usage error" 2 "exclude each other" \
    $Q stats --model "$M" --calib "$CAL" --calib-tokens "$T/x.npy" --out "$T/n"
expect_fail "a missing calibration file is named" 1 "$T/none.txt" $Q stats --model "$M" --calib "$T/none.txt" --out "$T/n"
check "no output folder and no temporaries after failures" "[ ! -e '$T/n' ] && [ -z \"\$(ls -A '$T' | grep -i tmp)\" ]"
finish stats
