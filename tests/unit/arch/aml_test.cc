#include "arch/x86/aml.h"

#include <gtest/gtest.h>

#include <stdexcept>

namespace vireo::x86::aml {
namespace {

TEST(Aml, PkgLengthCountsItsOwnBytes) {
    EXPECT_EQ(pkg_length(0), Bytes({0x01}));
    EXPECT_EQ(pkg_length(62), Bytes({0x3f}));  // the largest one-byte length, 63
    // 63 + 2 = 65 = 0x41: two bytes, low nibble in the lead byte.
    EXPECT_EQ(pkg_length(63), Bytes({0x41, 0x04}));
    EXPECT_EQ(pkg_length(0xffd), Bytes({0x4f, 0xff}));        // 0xfff: largest 2-byte
    EXPECT_EQ(pkg_length(0xffe), Bytes({0x81, 0x00, 0x01}));  // 0x1001 in 3 bytes
    EXPECT_EQ(pkg_length(0xffffc), Bytes({0x8f, 0xff, 0xff}));
    EXPECT_EQ(pkg_length(0xffffd), Bytes({0xc1, 0x00, 0x00, 0x01}));
    EXPECT_THROW(pkg_length(1u << 28), std::invalid_argument);
}

TEST(Aml, NameStrings) {
    EXPECT_EQ(name_string("_S5"), Bytes({'_', 'S', '5', '_'}));
    EXPECT_EQ(name_string("PCI0"), Bytes({'P', 'C', 'I', '0'}));
    EXPECT_EQ(name_string("\\_SB"), Bytes({'\\', '_', 'S', 'B', '_'}));
    EXPECT_EQ(name_string("\\_SB.PCI0"),
              Bytes({'\\', 0x2e, '_', 'S', 'B', '_', 'P', 'C', 'I', '0'}));
    EXPECT_EQ(name_string("A.B.C"),
              Bytes({0x2f, 3, 'A', '_', '_', '_', 'B', '_', '_', '_', 'C', '_', '_', '_'}));
    EXPECT_THROW(name_string("TOOLONG"), std::invalid_argument);
    EXPECT_THROW(name_string("0ABC"), std::invalid_argument);
    EXPECT_THROW(name_string("a"), std::invalid_argument);
    EXPECT_THROW(name_string(""), std::invalid_argument);
}

TEST(Aml, IntegersUseTheShortestEncoding) {
    EXPECT_EQ(integer(0), Bytes({0x00}));
    EXPECT_EQ(integer(1), Bytes({0x01}));
    EXPECT_EQ(integer(5), Bytes({0x0a, 0x05}));
    EXPECT_EQ(integer(0x3f8), Bytes({0x0b, 0xf8, 0x03}));
    EXPECT_EQ(integer(0xc0000000), Bytes({0x0c, 0x00, 0x00, 0x00, 0xc0}));
    EXPECT_EQ(integer(0x100000000), Bytes({0x0e, 0, 0, 0, 0, 1, 0, 0, 0}));
}

TEST(Aml, EisaIdIsCompressed) {
    // Values iasl produces for EisaId ("PNP0A03") and EisaId ("PNP0501").
    EXPECT_EQ(eisa_id("PNP0A03"), Bytes({0x0c, 0x41, 0xd0, 0x0a, 0x03}));
    EXPECT_EQ(eisa_id("PNP0501"), Bytes({0x0c, 0x41, 0xd0, 0x05, 0x01}));
    EXPECT_THROW(eisa_id("pnp0a03"), std::invalid_argument);
    EXPECT_THROW(eisa_id("PNP0A0G"), std::invalid_argument);
}

TEST(Aml, StringsAreNulTerminated) {
    EXPECT_EQ(string("AB"), Bytes({0x0d, 'A', 'B', 0}));
}

TEST(Aml, NamedPackage) {
    // Name (_S5, Package () {5, 5, 0, 0})
    EXPECT_EQ(
        name("_S5", package({integer(5), integer(5), integer(0), integer(0)})),
        Bytes({0x08, '_', 'S', '5', '_', 0x12, 0x08, 0x04, 0x0a, 0x05, 0x0a, 0x05, 0x00, 0x00}));
}

TEST(Aml, DeviceAndScopeWrapTheirBodies) {
    Bytes dev = device("COM1", {name("_UID", integer(1))});
    EXPECT_EQ(dev, Bytes({0x5b, 0x82, 0x0b, 'C', 'O', 'M', '1', 0x08, '_', 'U', 'I', 'D', 0x01}));
    Bytes sc = scope("\\_SB", {dev});
    EXPECT_EQ(sc[0], 0x10);
    EXPECT_EQ(sc[1], 1 + 5 + dev.size());
    EXPECT_EQ(sc.size(), 2 + 5 + dev.size());
}

TEST(Aml, ResourceTemplateEndsWithTheEndTag) {
    // ResourceTemplate () { IO (Decode16, 0x3F8, 0x3F8, 0x00, 0x08) IRQNoFlags () {4} }
    Bytes rt = resource_template({io_port(0x3f8, 0x3f8, 0, 8), irq(4)});
    EXPECT_EQ(rt, Bytes({0x11, 0x10, 0x0a, 0x0d,                          // Buffer (13)
                         0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x00, 0x08,  // IO
                         0x22, 0x10, 0x00,                                // IRQNoFlags {4}
                         0x79, 0x00}));
    EXPECT_THROW(irq(16), std::invalid_argument);
}

TEST(Aml, AddressSpaceDescriptors) {
    // WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode, 0, 0, 0, 0, 1)
    EXPECT_EQ(word_bus_number(0, 0), Bytes({0x88, 0x0d, 0x00, 0x02, 0x0c, 0x00, 0x00, 0x00, 0x00,
                                            0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00}));
    // WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange, 0, 0xD00, 0xFFFF, 0,
    // 0xF300)
    EXPECT_EQ(word_io(0xd00, 0xffff), Bytes({0x88, 0x0d, 0x00, 0x01, 0x0c, 0x03, 0x00, 0x00, 0x00,
                                             0x0d, 0xff, 0xff, 0x00, 0x00, 0x00, 0xf3}));
    Bytes mem = dword_memory(0xc0000000, 0xdfffffff);
    ASSERT_EQ(mem.size(), 26u);
    EXPECT_EQ(mem[0], 0x87);
    EXPECT_EQ(mem[1] | (mem[2] << 8), 23);
    EXPECT_EQ(mem[3], 0x00) << "memory";
    EXPECT_EQ(Bytes(mem.begin() + 22, mem.end()), Bytes({0x00, 0x00, 0x00, 0x20})) << "length";
    EXPECT_EQ(memory32_fixed(0xe0000000, 0x100000),
              Bytes({0x86, 0x09, 0x00, 0x01, 0x00, 0x00, 0x00, 0xe0, 0x00, 0x00, 0x10, 0x00}));
}

}  // namespace
}  // namespace vireo::x86::aml
