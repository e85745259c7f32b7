// libFuzzer target for the .npy parser: any bytes must give an array or an
// error, never a crash, a hang or an out-of-bounds read. Built and run by
// npy_fuzz_test.sh with clang -fsanitize=fuzzer,address,undefined.
#include <cstddef>
#include <cstdint>

#include "cli/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view contents(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<ringattn::cli::NpyArray> array = ringattn::cli::ParseNpy(contents, "fuzz.npy");
  if (array.ok()) {
    // A parsed array round-trips.
    const std::string again = ringattn::cli::SerializeNpy(*array);
    absl::StatusOr<ringattn::cli::NpyArray> back = ringattn::cli::ParseNpy(again, "again.npy");
    if (!back.ok() || back->data != array->data || back->shape != array->shape) {
      __builtin_trap();
    }
  }
  return 0;
}
