#include "cli/npy.h"

#include <cstdio>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ringattn::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

NpyArray Sample() {
  NpyArray a;
  a.type = NpyType::kFloat32;
  a.shape = {2, 3};
  a.data.resize(24);
  for (int i = 0; i < 24; ++i) a.data[i] = static_cast<uint8_t>(i);
  return a;
}

TEST(NpyTest, RoundTrip) {
  const std::string bytes = SerializeNpy(Sample());
  EXPECT_EQ((bytes.size() - 24) % 64, 0u);
  const NpyArray back = *ParseNpy(bytes, "x.npy");
  EXPECT_EQ(back.type, NpyType::kFloat32);
  EXPECT_THAT(back.shape, ElementsAre(2, 3));
  EXPECT_EQ(back.data, Sample().data);
  NpyArray vec;
  vec.type = NpyType::kInt32;
  vec.shape = {3};
  vec.data.resize(12);
  EXPECT_THAT(ParseNpy(SerializeNpy(vec), "c.npy")->shape, ElementsAre(3));
}

// A header exactly as NumPy 1.x writes one.
TEST(NpyTest, ReadsNumpyHeaders) {
  std::string header = "{'descr': '<f2', 'fortran_order': False, 'shape': (4,), }";
  header.append(128 - 10 - header.size() - 1, ' ');
  header += '\n';
  std::string file = std::string("\x93NUMPY\x01\x00", 8);
  file.push_back(static_cast<char>(header.size()));
  file.push_back('\0');
  file += header + std::string(8, '\0');
  const NpyArray a = *ParseNpy(file, "h.npy");
  EXPECT_EQ(a.type, NpyType::kFloat16);
  EXPECT_EQ(a.elements(), 4);
}

TEST(NpyTest, CorruptFilesAreClearErrors) {
  const std::string good = SerializeNpy(Sample());
  EXPECT_THAT(ParseNpy("hello", "a.npy").status().message(), HasSubstr("a.npy: not a .npy file"));
  EXPECT_THAT(ParseNpy(good.substr(0, good.size() - 1), "t.npy").status().message(),
              HasSubstr("t.npy: data has 23 bytes; shape (2, 3) of <f4 needs 24 (truncated)"));
  EXPECT_THAT(ParseNpy(good + "x", "t.npy").status().message(), HasSubstr("(trailing bytes)"));
  std::string bad_type = good;
  bad_type.replace(bad_type.find("<f4"), 3, "<u1");
  EXPECT_THAT(ParseNpy(bad_type, "u.npy").status().message(),
              HasSubstr("u.npy: dtype '<u1' is not supported"));
  std::string fortran = good;
  fortran.replace(fortran.find("False"), 5, "True ");
  EXPECT_THAT(ParseNpy(fortran, "f.npy").status().message(), HasSubstr("fortran_order is True"));
  std::string long_header = good;
  long_header[8] = '\xff';
  long_header[9] = '\x7f';
  EXPECT_THAT(ParseNpy(long_header, "l.npy").status().message(), HasSubstr("runs past the end"));
  std::string negative = good;
  negative.replace(negative.find("(2, 3)"), 6, "(2,-3)");
  EXPECT_THAT(ParseNpy(negative, "n.npy").status().message(),
              HasSubstr("not a non-negative integer"));
  EXPECT_THAT(ReadNpy("/nonexistent/q.npy").status().message(),
              HasSubstr("/nonexistent/q.npy: cannot open"));
}

TEST(NpyTest, WritesAllOrNothing) {
  const std::string dir = ::testing::TempDir();
  const std::string a = dir + "/a.npy";
  ASSERT_TRUE(WriteFilesAtomically({{a, "one"}}).ok());
  EXPECT_THAT(WriteFilesAtomically({{a, "two"}, {"/nonexistent/b.npy", "x"}}).message(),
              HasSubstr("/nonexistent/b.npy: folder /nonexistent/ is not writable"));
  std::ifstream in(a);
  std::string contents;
  in >> contents;
  EXPECT_EQ(contents, "one");  // not replaced: b failed
  EXPECT_FALSE(std::ifstream(a + ".partial").good());
}

}  // namespace
}  // namespace ringattn::cli
