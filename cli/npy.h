// NumPy .npy files (format versions 1.0, 2.0, 3.0), little-endian, C order.
#ifndef RINGATTN_CLI_NPY_H_
#define RINGATTN_CLI_NPY_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace ringattn::cli {

enum class NpyType { kFloat32, kFloat64, kFloat16, kInt32, kInt64 };

int64_t NpyTypeBytes(NpyType type);
// The descr string, e.g. "<f4".
absl::string_view NpyDescr(NpyType type);

struct NpyArray {
  NpyType type = NpyType::kFloat32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;  // C order

  int64_t elements() const;
};

// Parses the bytes of a .npy file; `name` (the file) starts every error.
// Errors: InvalidArgument for a bad magic, version, header, a dtype other
// than <f4 <f8 <f2 <i4 <i8, Fortran order, or data that is truncated or
// longer than the shape says.
absl::StatusOr<NpyArray> ParseNpy(absl::string_view contents, absl::string_view name);

// Reads and parses `path`. Errors: NotFound / InvalidArgument naming it.
absl::StatusOr<NpyArray> ReadNpy(const std::string& path);

// The bytes of a version 1.0 .npy file holding `array`.
std::string SerializeNpy(const NpyArray& array);

// Writes every (path, contents) to a temporary file beside it, then renames
// them all into place: no file is written half, and none is renamed if any
// write failed. Errors: Internal naming the path and errno text.
absl::Status WriteFilesAtomically(absl::Span<const std::pair<std::string, std::string>> files);

// Checks, before any work, that outputs can be written all or nothing: each
// (flag name, path) pair with a non-empty path names a distinct file whose
// folder exists and is writable, and which is new or a regular file (a
// device node or a folder is never replaced). Errors name the flag.
absl::Status ValidateOutputPaths(absl::Span<const std::pair<std::string, std::string>> outputs);

}  // namespace ringattn::cli

#endif  // RINGATTN_CLI_NPY_H_
