# Functions of the bench scripts' tables, prepended to the awk programs of
# bench/kernel_ab.sh and bench/kernel_bench.sh.
#
# median(list): the median of the numbers in the space-separated `list`
# (the mean of the middle two for an even count).
function median(list,   n, x, i, j, t) {
  n = split(list, x, " ")
  for (i = 2; i <= n; ++i) for (j = i; j > 1 && x[j - 1] + 0 > x[j] + 0; --j) {
    t = x[j]; x[j] = x[j - 1]; x[j - 1] = t
  }
  return n % 2 ? x[(n + 1) / 2] : (x[n / 2] + x[n / 2 + 1]) / 2
}
# gflop_per_joule(ms, tflops, joules): a call's GFLOP (TFLOP/s x ms) over
# the joules it drew; 0 without joules.
function gflop_per_joule(ms, tflops, joules) {
  return joules > 0 ? ms * tflops / joules : 0
}
