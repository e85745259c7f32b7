// Prints which L2 half each SM of the current GPU reads through
// (bench/l2_halves.h): one line per SM (sm,half,cycles), then the two
// groups' sizes, mean latencies and SM ids.
//   l2_halves [LINES_PER_SM]   (64 by default)
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "bench/l2_halves.h"

int main(int argc, char** argv) {
  const int lines = argc > 1 ? std::atoi(argv[1]) : 64;
  if (argc > 2 || lines < 1) {
    std::fprintf(stderr, "usage: l2_halves [LINES_PER_SM >= 1]\n");
    return 2;
  }
  const auto latencies = ringattn::bench::ProbeL2Latency(lines);
  if (!latencies.ok()) {
    std::fprintf(stderr, "l2_halves: %s\n", std::string(latencies.status().message()).c_str());
    return 1;
  }
  int sm_count = 0;
  for (const auto& l : *latencies) sm_count = std::max(sm_count, l.sm + 1);
  const auto halves = ringattn::bench::SplitSmsByLatency(*latencies, sm_count);
  std::printf("sm,half,cycles\n");
  for (const auto& l : *latencies) {
    std::printf("%d,%d,%.1f\n", l.sm, halves.ok() ? halves->half[l.sm] : -1, l.cycles);
  }
  if (!halves.ok()) {
    std::fprintf(stderr, "l2_halves: %s\n", std::string(halves.status().message()).c_str());
    return 1;
  }
  for (int h = 0; h < 2; ++h) {
    std::string ids;
    int n = 0;
    for (int sm = 0; sm < sm_count; ++sm) {
      if (halves->half[sm] != h) continue;
      ids += (n++ ? " " : "") + std::to_string(sm);
    }
    std::printf("# half %d: %d SMs, %.1f cycles a load: %s\n", h, n,
                h == 0 ? halves->near_cycles : halves->far_cycles, ids.c_str());
  }
  std::printf("# separation %.1f (gap over spread)\n", halves->separation);
  return 0;
}
