#include "base/byte_size.h"

#include <gtest/gtest.h>

#include "base/error.h"

namespace vireo {
namespace {

TEST(ByteSize, ParsesPlainNumbersAndUnits) {
    EXPECT_EQ(parse_byte_size("4096", "--memory"), 4096u);
    EXPECT_EQ(parse_byte_size("512M", "--memory"), 512 * MiB);
    EXPECT_EQ(parse_byte_size("4GiB", "--memory"), 4 * GiB);
    EXPECT_EQ(parse_byte_size("64K", "--memory"), 64 * KiB);
}

TEST(ByteSize, RefusesGarbageNamingTheOption) {
    try {
        parse_byte_size("1.5G", "--memory");
        FAIL() << "accepted 1.5G";
    } catch (const Error& error) {
        EXPECT_NE(std::string(error.what()).find("--memory"), std::string::npos);
        EXPECT_NE(std::string(error.what()).find("1.5G"), std::string::npos);
    }
    EXPECT_THROW(parse_byte_size("", "--memory"), Error);
    EXPECT_THROW(parse_byte_size("12X", "--memory"), Error);
    EXPECT_THROW(parse_byte_size("99999999999T", "--memory"), Error);
}

TEST(ByteSize, FormatsWithTheLargestExactUnit) {
    EXPECT_EQ(format_byte_size(4 * GiB), "4 GiB");
    EXPECT_EQ(format_byte_size(1536 * MiB), "1536 MiB");
    EXPECT_EQ(format_byte_size(1000), "1000 B");
}

}  // namespace
}  // namespace vireo
