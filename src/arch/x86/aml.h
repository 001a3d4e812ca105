#pragma once

#include <cstdint>
#include <initializer_list>
#include <string_view>
#include <vector>

// A small builder for the ACPI Machine Language a static DSDT needs (ACPI 6.x,
// chapter 20: names, scopes, devices, packages, integers, strings and
// ResourceTemplate buffers). Each function returns the encoded bytes of one
// term; containers take their contents already encoded.
namespace vireo::x86::aml {

using Bytes = std::vector<uint8_t>;

// PkgLength for `content_length` bytes that follow it: the encoded length
// counts its own 1..4 bytes.
Bytes pkg_length(uint64_t content_length);

// A NameString: "_S5", "PCI0", "\\_SB", "\\_SB.PCI0". Segments shorter than
// four characters are padded with '_'. Throws std::invalid_argument for an
// invalid name (a bug in the caller, not a user error).
Bytes name_string(std::string_view path);

Bytes integer(uint64_t value);  // ZeroOp, OneOp or the smallest prefix
Bytes string(std::string_view value);
Bytes eisa_id(std::string_view id);  // "PNP0A03" -> compressed EISA ID as a DWordConst

// Terms one after the other, as at the top of a DSDT.
Bytes term_list(std::initializer_list<Bytes> terms);
Bytes name(std::string_view name, const Bytes& value);  // DefName
Bytes scope(std::string_view name, std::initializer_list<Bytes> terms);
Bytes device(std::string_view name, std::initializer_list<Bytes> terms);
Bytes package(std::initializer_list<Bytes> elements);
Bytes buffer(const Bytes& contents);

// ResourceTemplate(): a buffer of resource descriptors and the end tag.
Bytes resource_template(std::initializer_list<Bytes> descriptors);

// Resource descriptors (ACPI 6.x, 6.4).
Bytes io_port(uint16_t minimum, uint16_t maximum, uint8_t alignment,
              uint8_t length);                              // IO, Decode16
Bytes irq(uint8_t line);                                    // IRQNoFlags: edge, active high
Bytes word_bus_number(uint16_t minimum, uint16_t maximum);  // producer, fixed, positive decode
Bytes word_io(uint16_t minimum, uint16_t maximum);          // producer, fixed, entire range
Bytes dword_memory(uint32_t minimum, uint32_t maximum);     // producer, fixed, read/write
Bytes memory32_fixed(uint32_t base, uint32_t length);       // read/write

}  // namespace vireo::x86::aml
