#include "cli/npy.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "core/status_macros.h"

namespace ringattn::cli {
namespace {

constexpr absl::string_view kMagic = "\x93NUMPY";

absl::Status Bad(absl::string_view name, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(name, ": ", what));
}

// The value text of 'key' in a header dict such as
// {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }.
absl::StatusOr<absl::string_view> DictValue(absl::string_view header, absl::string_view key,
                                            absl::string_view name) {
  const std::string quoted = absl::StrCat("'", key, "'");
  const size_t at = header.find(quoted);
  if (at == absl::string_view::npos) {
    return Bad(name, absl::StrCat("header has no ", quoted, " entry"));
  }
  absl::string_view rest = header.substr(at + quoted.size());
  rest = absl::StripLeadingAsciiWhitespace(rest);
  if (!absl::ConsumePrefix(&rest, ":")) {
    return Bad(name, absl::StrCat("header entry ", quoted, " has no ':'"));
  }
  rest = absl::StripLeadingAsciiWhitespace(rest);
  if (absl::StartsWith(rest, "(")) {
    const size_t close = rest.find(')');
    if (close == absl::string_view::npos) {
      return Bad(name, "header shape has no closing ')'");
    }
    return rest.substr(0, close + 1);
  }
  const size_t end = rest.find_first_of(",}");
  if (end == absl::string_view::npos) {
    return Bad(name, absl::StrCat("header entry ", quoted, " is not closed"));
  }
  return absl::StripTrailingAsciiWhitespace(rest.substr(0, end));
}

}  // namespace

int64_t NpyTypeBytes(NpyType type) {
  switch (type) {
    case NpyType::kFloat32:
    case NpyType::kInt32:
      return 4;
    case NpyType::kFloat64:
    case NpyType::kInt64:
      return 8;
    case NpyType::kFloat16:
      return 2;
  }
  return 0;
}

absl::string_view NpyDescr(NpyType type) {
  switch (type) {
    case NpyType::kFloat32:
      return "<f4";
    case NpyType::kFloat64:
      return "<f8";
    case NpyType::kFloat16:
      return "<f2";
    case NpyType::kInt32:
      return "<i4";
    case NpyType::kInt64:
      return "<i8";
  }
  return "";
}

int64_t NpyArray::elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

absl::StatusOr<NpyArray> ParseNpy(absl::string_view contents, absl::string_view name) {
  if (!absl::StartsWith(contents, kMagic)) {
    return Bad(name, "not a .npy file (no \\x93NUMPY magic)");
  }
  if (contents.size() < 10) return Bad(name, "truncated header");
  const uint8_t major = static_cast<uint8_t>(contents[6]);
  size_t header_len = 0, header_start = 0;
  if (major == 1) {
    header_len = static_cast<uint8_t>(contents[8]) |
                 (static_cast<size_t>(static_cast<uint8_t>(contents[9])) << 8);
    header_start = 10;
  } else if (major == 2 || major == 3) {
    if (contents.size() < 12) return Bad(name, "truncated header");
    for (int i = 0; i < 4; ++i) {
      header_len |= static_cast<size_t>(static_cast<uint8_t>(contents[8 + i])) << (8 * i);
    }
    header_start = 12;
  } else {
    return Bad(name, absl::StrCat("unsupported .npy version ", major, "; expected 1, 2 or 3"));
  }
  if (header_len > contents.size() - header_start) {
    return Bad(name,
               absl::StrCat("header of ", header_len, " bytes runs past the end of the file (",
                            contents.size(), " bytes)"));
  }
  const absl::string_view header = contents.substr(header_start, header_len);

  ASSIGN_OR_RETURN(absl::string_view descr, DictValue(header, "descr", name));
  NpyArray array;
  bool known = false;
  for (NpyType type : {NpyType::kFloat32, NpyType::kFloat64, NpyType::kFloat16, NpyType::kInt32,
                       NpyType::kInt64}) {
    if (descr == absl::StrCat("'", NpyDescr(type), "'")) {
      array.type = type;
      known = true;
    }
  }
  if (!known) {
    return Bad(name, absl::StrCat("dtype ", descr,
                                  " is not supported; expected '<f4', '<f8', "
                                  "'<f2', '<i4' or '<i8'"));
  }
  ASSIGN_OR_RETURN(absl::string_view fortran, DictValue(header, "fortran_order", name));
  if (fortran != "False") {
    return Bad(name, absl::StrCat("fortran_order is ", fortran, "; expected False (C order)"));
  }
  ASSIGN_OR_RETURN(absl::string_view shape, DictValue(header, "shape", name));
  if (!absl::StartsWith(shape, "(")) {
    return Bad(name, absl::StrCat("shape ", shape, " is not a tuple"));
  }
  absl::string_view dims = shape.substr(1, shape.size() - 2);
  int64_t elements = 1;
  for (absl::string_view part : absl::StrSplit(dims, ',', absl::SkipWhitespace())) {
    int64_t d;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(part), &d) || d < 0) {
      return Bad(name, absl::StrCat("shape ", shape,
                                    " has a dimension that is not a "
                                    "non-negative integer"));
    }
    if (d > 0 && elements > std::numeric_limits<int64_t>::max() / 16 / d) {
      return Bad(name, absl::StrCat("shape ", shape, " is too large"));
    }
    elements *= d;
    array.shape.push_back(d);
  }
  const absl::string_view data = contents.substr(header_start + header_len);
  const int64_t expected = elements * NpyTypeBytes(array.type);
  if (static_cast<int64_t>(data.size()) != expected) {
    return Bad(name,
               absl::StrCat("data has ", data.size(), " bytes; shape ", shape, " of ",
                            NpyDescr(array.type), " needs ", expected,
                            data.size() < static_cast<size_t>(expected) ? " (truncated)"
                                                                        : " (trailing bytes)"));
  }
  array.data.assign(data.begin(), data.end());
  return array;
}

absl::StatusOr<NpyArray> ReadNpy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat(path, ": cannot open: ", std::strerror(errno)));
  }
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return ParseNpy(buffer.str(), path);
}

std::string SerializeNpy(const NpyArray& array) {
  std::vector<std::string> dims;
  for (int64_t d : array.shape) dims.push_back(absl::StrCat(d));
  std::string shape = absl::StrJoin(dims, ", ");
  if (array.shape.size() == 1) shape += ",";
  std::string header = absl::StrCat("{'descr': '", NpyDescr(array.type),
                                    "', 'fortran_order': False, 'shape': (", shape, "), }");
  // Pad with spaces so that magic + length + header + '\n' is a multiple
  // of 64, as NumPy writes it.
  const size_t total = kMagic.size() + 4 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  std::string out(kMagic);
  out.push_back('\x01');
  out.push_back('\x00');
  out.push_back(static_cast<char>(header.size() & 0xff));
  out.push_back(static_cast<char>(header.size() >> 8));
  out += header;
  out.append(reinterpret_cast<const char*>(array.data.data()), array.data.size());
  return out;
}

absl::Status ValidateOutputPaths(absl::Span<const std::pair<std::string, std::string>> outputs) {
  // "--flag=path", or the path alone where no flag names it.
  const auto named = [](const std::string& flag, const std::string& path) {
    return flag.empty() ? path : absl::StrCat("--", flag, "=", path);
  };
  std::map<std::string, std::string> seen;  // path -> flag
  for (const auto& [flag, path] : outputs) {
    if (path.empty()) continue;
    if (const auto [it, fresh] = seen.emplace(path, flag); !fresh) {
      return absl::InvalidArgumentError(absl::StrCat(named(it->second, path), " and ",
                                                     named(flag, path),
                                                     " name the same file; expected one each"));
    }
    struct stat st;
    if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
      return absl::InvalidArgumentError(absl::StrCat(
          named(flag, path), " is not a regular file; expected a new or regular file"));
    }
    const size_t slash = path.find_last_of('/');
    const std::string folder = slash == std::string::npos ? "." : path.substr(0, slash + 1);
    if (::access(folder.c_str(), W_OK) != 0) {
      return absl::InvalidArgumentError(absl::StrCat(named(flag, path), ": folder ", folder,
                                                     " is not writable: ", std::strerror(errno)));
    }
  }
  return absl::OkStatus();
}

absl::Status WriteFilesAtomically(absl::Span<const std::pair<std::string, std::string>> files) {
  std::vector<std::pair<std::string, std::string>> named;
  for (const auto& [path, contents] : files) named.push_back({"", path});
  RETURN_IF_ERROR(ValidateOutputPaths(named));
  std::vector<std::string> temps;
  const auto cleanup = [&] {
    for (const std::string& t : temps) std::remove(t.c_str());
  };
  for (const auto& [path, contents] : files) {
    const std::string temp = path + ".partial";
    std::FILE* f = std::fopen(temp.c_str(), "wb");
    if (f == nullptr) {
      const std::string why = std::strerror(errno);
      cleanup();
      return absl::InternalError(absl::StrCat(path, ": cannot write: ", why));
    }
    temps.push_back(temp);
    const bool written = std::fwrite(contents.data(), 1, contents.size(), f) == contents.size();
    const bool closed = std::fclose(f) == 0;
    if (!written || !closed) {
      const std::string why = std::strerror(errno);
      cleanup();
      return absl::InternalError(absl::StrCat(path, ": write failed: ", why));
    }
  }
  for (size_t i = 0; i < files.size(); ++i) {
    if (std::rename(temps[i].c_str(), files[i].first.c_str()) != 0) {
      const std::string why = std::strerror(errno);
      cleanup();
      return absl::InternalError(absl::StrCat(files[i].first, ": rename failed: ", why));
    }
  }
  return absl::OkStatus();
}

}  // namespace ringattn::cli
