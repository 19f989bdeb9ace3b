# SPDX-License-Identifier: MIT
# Latency percentiles of placed->confirmed against offered rate, beside the raw
# broker's produce->consume latency and the PostgreSQL configurations' points;
# gnuplot -e "datafile='..'; outfile='..'".
set terminal pngcairo size 900,560 noenhanced font ",10"
set output outfile
set title "choreo: order.placed -> order.confirmed latency vs offered rate"
set xlabel "offered rate (orders/s)"
set ylabel "latency (ms)"
set logscale xy
set grid
set key outside right top
set offsets graph 0.05, graph 0.05, graph 0.05, graph 0.05
set datafile missing "NaN"
saga = "index 0 using 1:2 with linespoints lw 2 pt 7 title 'p50', '' index 0 using 1:3 with linespoints lw 2 pt 7 title 'p90', '' index 0 using 1:4 with linespoints lw 2 pt 7 title 'p99', '' index 0 using 1:5 with linespoints lw 1 pt 6 dt 2 title 'max'"
raw = ", '' index 1 using 1:2 with points pt 5 ps 1.5 title 'raw broker p50', '' index 1 using 1:4 with points pt 9 ps 1.5 title 'raw broker p99'"
# PostgreSQL configurations of bench/run's phase 5: index 2.. (p50 and p99 at one rate)
stores = ", for [i=1:n_store] '' index (1 + i) using 1:2 with points pt (3 + 2 * i) ps 1.5 title word(store_titles, i) . ' p50', for [i=1:n_store] '' index (1 + i) using 1:4 with points pt (4 + 2 * i) ps 1.5 title word(store_titles, i) . ' p99'"
if (!exists("has_raw")) has_raw = 0
if (!exists("n_store")) n_store = 0
if (!exists("store_titles")) store_titles = ""
extra = (has_raw ? raw : "") . (n_store > 0 ? stores : "")
eval "plot datafile " . saga . extra
