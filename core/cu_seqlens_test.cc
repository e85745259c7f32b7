#include "core/cu_seqlens.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace ringattn {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(CuSeqlensTest, Valid) {
  EXPECT_TRUE(ValidateCuSeqlens({0, 3, 3, 7}, 7).ok());
  EXPECT_THAT(DocumentIds({0, 3, 3, 5}), ElementsAre(0, 0, 0, 2, 2));
}

TEST(CuSeqlensTest, Errors) {
  EXPECT_THAT(ValidateCuSeqlens({1, 4}, 4).message(), HasSubstr("cu_seqlens[0] is 1; expected 0"));
  EXPECT_THAT(ValidateCuSeqlens({0, 5, 4}, 4).message(),
              HasSubstr("cu_seqlens[2] = 4 is less than cu_seqlens[1] = 5"));
  EXPECT_THAT(ValidateCuSeqlens({0, 2, 4}, 6).message(),
              HasSubstr("ends at 4; expected the total token count 6"));
  EXPECT_THAT(ValidateCuSeqlens({0}, 0).message(), HasSubstr("expected at least 2"));
}

}  // namespace
}  // namespace ringattn
