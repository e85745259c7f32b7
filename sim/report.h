// The simulation's reports: the Chrome trace of every rank's compute and
// communication lanes (TraceJson) and the summary (FormatSummary, declared
// in sim/simulator.h). Private to the simulator.
#ifndef RINGATTN_SIM_REPORT_H_
#define RINGATTN_SIM_REPORT_H_

#include <string>

#include "sim/network.h"
#include "sim/simulator.h"

namespace ringattn::sim::internal {

std::string TraceJson(SimNetwork& net, int world);

}  // namespace ringattn::sim::internal

#endif  // RINGATTN_SIM_REPORT_H_
