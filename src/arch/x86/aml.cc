#include "arch/x86/aml.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace vireo::x86::aml {

namespace {

constexpr uint8_t kZeroOp = 0x00;
constexpr uint8_t kOneOp = 0x01;
constexpr uint8_t kNameOp = 0x08;
constexpr uint8_t kBytePrefix = 0x0a;
constexpr uint8_t kWordPrefix = 0x0b;
constexpr uint8_t kDWordPrefix = 0x0c;
constexpr uint8_t kStringPrefix = 0x0d;
constexpr uint8_t kQWordPrefix = 0x0e;
constexpr uint8_t kScopeOp = 0x10;
constexpr uint8_t kBufferOp = 0x11;
constexpr uint8_t kPackageOp = 0x12;
constexpr uint8_t kExtOpPrefix = 0x5b;
constexpr uint8_t kDeviceOp = 0x82;
constexpr uint8_t kRootChar = '\\';
constexpr uint8_t kDualNamePrefix = 0x2e;
constexpr uint8_t kMultiNamePrefix = 0x2f;

// Resource descriptor tags.
constexpr uint8_t kIoTag = 0x47;          // small, 7 bytes
constexpr uint8_t kIrqNoFlagsTag = 0x22;  // small, 2 bytes
constexpr uint8_t kEndTag = 0x79;         // small, 1 byte
constexpr uint8_t kMemory32FixedTag = 0x86;
constexpr uint8_t kDWordAddressTag = 0x87;
constexpr uint8_t kWordAddressTag = 0x88;
constexpr uint8_t kAddressSpaceMemory = 0;
constexpr uint8_t kAddressSpaceIo = 1;
constexpr uint8_t kAddressSpaceBus = 2;
// General flags: _MAF and _MIF fixed, positive decode, producer.
constexpr uint8_t kFixedProducer = 0x0c;

void append(Bytes& out, const Bytes& more) {
    out.insert(out.end(), more.begin(), more.end());
}

template <typename T>
void append_le(Bytes& out, T value) {
    for (size_t i = 0; i < sizeof(T); ++i) {
        out.push_back(static_cast<uint8_t>(static_cast<uint64_t>(value) >> (8 * i)));
    }
}

bool is_lead_char(char c) {
    return (c >= 'A' && c <= 'Z') || c == '_';
}
bool is_name_char(char c) {
    return is_lead_char(c) || (c >= '0' && c <= '9');
}

// Opcode(s), PkgLength, then the body: the shape of every container.
Bytes with_pkg_length(std::initializer_list<uint8_t> opcode, const Bytes& body) {
    Bytes out(opcode);
    append(out, pkg_length(body.size()));
    append(out, body);
    return out;
}

Bytes concat(const Bytes& head, std::initializer_list<Bytes> parts) {
    Bytes out = head;
    for (const Bytes& part : parts) {
        append(out, part);
    }
    return out;
}

}  // namespace

Bytes pkg_length(uint64_t content_length) {
    // One byte holds 6 bits; n following bytes add 8 bits each to a 4-bit lead nibble.
    if (content_length + 1 < (1u << 6)) {
        return {static_cast<uint8_t>(content_length + 1)};
    }
    for (uint64_t extra = 1; extra <= 3; ++extra) {
        uint64_t total = content_length + 1 + extra;
        if (total < (uint64_t{1} << (4 + 8 * extra))) {
            Bytes out{static_cast<uint8_t>((extra << 6) | (total & 0xf))};
            for (uint64_t i = 0; i < extra; ++i) {
                out.push_back(static_cast<uint8_t>(total >> (4 + 8 * i)));
            }
            return out;
        }
    }
    throw std::invalid_argument("AML package longer than 2^28 bytes");
}

Bytes name_string(std::string_view path) {
    Bytes out;
    if (!path.empty() && path.front() == '\\') {
        out.push_back(kRootChar);
        path.remove_prefix(1);
    }
    std::vector<std::string> segments;
    while (!path.empty()) {
        size_t dot = path.find('.');
        std::string segment(path.substr(0, dot));
        if (segment.empty() || segment.size() > 4 || !is_lead_char(segment[0])) {
            throw std::invalid_argument("invalid AML name segment '" + segment + "'");
        }
        for (char c : segment) {
            if (!is_name_char(c)) {
                throw std::invalid_argument("invalid AML name segment '" + segment + "'");
            }
        }
        segment.resize(4, '_');
        segments.push_back(segment);
        path.remove_prefix(dot == std::string_view::npos ? path.size() : dot + 1);
    }
    if (segments.empty()) {
        throw std::invalid_argument("empty AML name");
    }
    if (segments.size() == 2) {
        out.push_back(kDualNamePrefix);
    } else if (segments.size() > 2) {
        out.push_back(kMultiNamePrefix);
        out.push_back(static_cast<uint8_t>(segments.size()));
    }
    for (const std::string& segment : segments) {
        out.insert(out.end(), segment.begin(), segment.end());
    }
    return out;
}

Bytes integer(uint64_t value) {
    if (value == 0) {
        return {kZeroOp};
    }
    if (value == 1) {
        return {kOneOp};
    }
    Bytes out;
    if (value <= 0xff) {
        out.push_back(kBytePrefix);
        append_le(out, static_cast<uint8_t>(value));
    } else if (value <= 0xffff) {
        out.push_back(kWordPrefix);
        append_le(out, static_cast<uint16_t>(value));
    } else if (value <= 0xffffffff) {
        out.push_back(kDWordPrefix);
        append_le(out, static_cast<uint32_t>(value));
    } else {
        out.push_back(kQWordPrefix);
        append_le(out, value);
    }
    return out;
}

Bytes string(std::string_view value) {
    Bytes out(value.size() + 2, 0);  // prefix, characters, NUL
    out[0] = kStringPrefix;
    std::copy(value.begin(), value.end(), out.begin() + 1);
    return out;
}

Bytes eisa_id(std::string_view id) {
    auto hex = [&](char c) -> uint32_t {
        if (c >= '0' && c <= '9') {
            return static_cast<uint32_t>(c - '0');
        }
        if (c >= 'A' && c <= 'F') {
            return static_cast<uint32_t>(c - 'A' + 10);
        }
        throw std::invalid_argument("invalid EISA ID '" + std::string(id) + "'");
    };
    if (id.size() != 7 || !(id[0] >= 'A' && id[0] <= 'Z') || !(id[1] >= 'A' && id[1] <= 'Z') ||
        !(id[2] >= 'A' && id[2] <= 'Z')) {
        throw std::invalid_argument("invalid EISA ID '" + std::string(id) + "'");
    }
    // Three 5-bit letters and four hex digits, most significant byte first.
    uint32_t value = (static_cast<uint32_t>(id[0] - 0x40) << 26) |
                     (static_cast<uint32_t>(id[1] - 0x40) << 21) |
                     (static_cast<uint32_t>(id[2] - 0x40) << 16) | (hex(id[3]) << 12) |
                     (hex(id[4]) << 8) | (hex(id[5]) << 4) | hex(id[6]);
    Bytes out{kDWordPrefix};
    append_le(out, __builtin_bswap32(value));
    return out;
}

Bytes term_list(std::initializer_list<Bytes> terms) {
    return concat({}, terms);
}

Bytes name(std::string_view name, const Bytes& value) {
    Bytes out{kNameOp};
    append(out, name_string(name));
    append(out, value);
    return out;
}

Bytes scope(std::string_view name, std::initializer_list<Bytes> terms) {
    return with_pkg_length({kScopeOp}, concat(name_string(name), terms));
}

Bytes device(std::string_view name, std::initializer_list<Bytes> terms) {
    return with_pkg_length({kExtOpPrefix, kDeviceOp}, concat(name_string(name), terms));
}

Bytes package(std::initializer_list<Bytes> elements) {
    if (elements.size() > 0xff) {
        throw std::invalid_argument("AML package of more than 255 elements");
    }
    return with_pkg_length({kPackageOp}, concat({static_cast<uint8_t>(elements.size())}, elements));
}

Bytes buffer(const Bytes& contents) {
    return with_pkg_length({kBufferOp}, concat(integer(contents.size()), {contents}));
}

Bytes resource_template(std::initializer_list<Bytes> descriptors) {
    // Checksum 0 in the end tag means "treat as correct".
    Bytes body = concat({}, descriptors);
    append(body, {kEndTag, 0});
    return buffer(body);
}

Bytes io_port(uint16_t minimum, uint16_t maximum, uint8_t alignment, uint8_t length) {
    Bytes out{kIoTag, 0x01};  // decodes all 16 address bits
    append_le(out, minimum);
    append_le(out, maximum);
    out.push_back(alignment);
    out.push_back(length);
    return out;
}

Bytes irq(uint8_t line) {
    if (line > 15) {
        throw std::invalid_argument("IRQ descriptor line above 15");
    }
    Bytes out{kIrqNoFlagsTag};
    append_le(out, static_cast<uint16_t>(1u << line));
    return out;
}

namespace {

Bytes word_address(uint8_t space, uint8_t type_flags, uint16_t minimum, uint16_t maximum) {
    Bytes out{kWordAddressTag};
    append_le(out, uint16_t{13});
    out.push_back(space);
    out.push_back(kFixedProducer);
    out.push_back(type_flags);
    append_le(out, uint16_t{0});  // granularity
    append_le(out, minimum);
    append_le(out, maximum);
    append_le(out, uint16_t{0});  // translation offset
    append_le(out, static_cast<uint16_t>(maximum - minimum + 1));
    return out;
}

}  // namespace

Bytes word_bus_number(uint16_t minimum, uint16_t maximum) {
    return word_address(kAddressSpaceBus, 0, minimum, maximum);
}

Bytes word_io(uint16_t minimum, uint16_t maximum) {
    constexpr uint8_t kEntireRange = 0x03;  // _RNG: ISA and non-ISA ranges
    return word_address(kAddressSpaceIo, kEntireRange, minimum, maximum);
}

Bytes dword_memory(uint32_t minimum, uint32_t maximum) {
    constexpr uint8_t kReadWriteNonCacheable = 0x01;
    Bytes out{kDWordAddressTag};
    append_le(out, uint16_t{23});
    out.push_back(kAddressSpaceMemory);
    out.push_back(kFixedProducer);
    out.push_back(kReadWriteNonCacheable);
    append_le(out, uint32_t{0});  // granularity
    append_le(out, minimum);
    append_le(out, maximum);
    append_le(out, uint32_t{0});  // translation offset
    append_le(out, maximum - minimum + 1);
    return out;
}

Bytes memory32_fixed(uint32_t base, uint32_t length) {
    Bytes out{kMemory32FixedTag};
    append_le(out, uint16_t{9});
    out.push_back(0x01);  // read/write
    append_le(out, base);
    append_le(out, length);
    return out;
}

}  // namespace vireo::x86::aml
