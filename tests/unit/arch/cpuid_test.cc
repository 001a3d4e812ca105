#include "arch/x86/cpuid.h"

#include <gtest/gtest.h>

#include <cstring>
#include <optional>
#include <string>

#include "base/error.h"

namespace vireo::x86 {
namespace {

// A host table shaped like KVM_GET_SUPPORTED_CPUID on an Intel machine.
std::vector<CpuidEntry> host_entries(bool with_leaf_1f) {
    std::vector<CpuidEntry> host = {
        {0, 0, 0, with_leaf_1f ? 0x1fu : 0xdu, 0x756e6547, 0x6c65746e, 0x49656e69},
        // leaf 1: host APIC ID 7 and 16 logical CPUs, MONITOR (ECX 3) and x2APIC (ECX 21).
        {1, 0, 0, 0x000906ea, 0x07100800, 0x7ffafbff | (1u << 3) | (1u << 21), 0xbfebfbff},
        // leaf 4: L1d, L1i, L2, L3, end; host sharing fields set to garbage.
        {4, 0, 1, 0x1c004121, 0x01c0003f, 0x3f, 0},
        {4, 1, 1, 0x1c004122, 0x01c0003f, 0x3f, 0},
        {4, 2, 1, 0x1c004143, 0x03c0003f, 0x3ff, 0},
        {4, 3, 1, 0x1c03c163, 0x03c0003f, 0x2fff, 6},
        {4, 4, 1, 0, 0, 0, 0},
        {0xb, 0, 1, 1, 2, 0x100, 7},
        {0xb, 1, 1, 4, 16, 0x201, 7},
        {0x40000000, 0, 0, 0x40000001, 0x4b4d564b, 0x564b4d56, 0x4d},  // "KVMKVMKVM\0\0\0"
        {0x40000001, 0, 0, 0x01007afb, 0, 0, 0},
        {0x80000008, 0, 0, 0x3027, 0, 0x0000000f, 0},
    };
    if (with_leaf_1f) {
        host.push_back({0x1f, 0, 1, 1, 2, 0x100, 7});
        host.push_back({0x1f, 1, 1, 4, 16, 0x201, 7});
    }
    return host;
}

std::optional<CpuidEntry> find(const std::vector<CpuidEntry>& entries, uint32_t function,
                               uint32_t index = 0) {
    std::optional<CpuidEntry> found;
    for (const CpuidEntry& e : entries) {
        if (e.function == function && e.index == index) {
            EXPECT_FALSE(found.has_value()) << "duplicate leaf " << function << "." << index;
            found = e;
        }
    }
    return found;
}

void expect_topology(const std::vector<CpuidEntry>& entries, uint32_t function, uint32_t apic_id,
                     uint32_t count, uint32_t core_bits) {
    SCOPED_TRACE(function);
    auto smt = find(entries, function, 0);
    auto core = find(entries, function, 1);
    auto end = find(entries, function, 2);
    ASSERT_TRUE(smt && core && end);
    EXPECT_EQ(smt->eax, 0u) << "one thread per core: no SMT bits";
    EXPECT_EQ(smt->ebx, 1u);
    EXPECT_EQ(smt->ecx, 0x100u) << "level 0, type SMT";
    EXPECT_EQ(core->eax, core_bits);
    EXPECT_EQ(core->ebx, count);
    EXPECT_EQ(core->ecx, 0x201u) << "level 1, type core";
    EXPECT_EQ(end->ebx, 0u);
    EXPECT_EQ(end->ecx & 0xff00, 0u) << "type invalid ends the levels";
    for (const auto& e : {*smt, *core, *end}) {
        EXPECT_EQ(e.edx, apic_id);
        EXPECT_EQ(e.flags, kCpuidFlagSignificantIndex);
    }
}

struct Topology {
    uint32_t count;
    uint32_t core_bits;
};

class CpuidTopology : public ::testing::TestWithParam<Topology> {};

TEST_P(CpuidTopology, EachVcpuSeesItsApicIdAndTheCoreCount) {
    const auto [count, core_bits] = GetParam();
    std::vector<CpuidEntry> host = host_entries(false);
    for (uint32_t index = 0; index < count; ++index) {
        SCOPED_TRACE(index);
        std::vector<CpuidEntry> out = vcpu_cpuid(host, index, count, false);

        auto leaf1 = find(out, 1);
        ASSERT_TRUE(leaf1);
        EXPECT_EQ(leaf1->ebx >> 24, index) << "initial APIC ID";
        EXPECT_EQ((leaf1->ebx >> 16) & 0xff, count) << "logical processors";
        EXPECT_EQ(leaf1->ebx & 0xffff, 0x0800u) << "CLFLUSH size and brand kept";
        EXPECT_EQ((leaf1->edx >> 28) & 1, count > 1 ? 1u : 0u) << "HTT";
        EXPECT_EQ(leaf1->ecx >> 31, 1u) << "hypervisor present";
        EXPECT_EQ(leaf1->ecx & (1u << 3), 0u) << "MONITOR not offered";
        EXPECT_NE(leaf1->ecx & (1u << 21), 0u) << "x2APIC kept";

        for (uint32_t sub = 0; sub < 4; ++sub) {
            auto cache = find(out, 4, sub);
            ASSERT_TRUE(cache);
            EXPECT_EQ(cache->eax >> 26, count - 1) << "cores per package - 1";
            uint32_t level = (cache->eax >> 5) & 7;
            EXPECT_EQ((cache->eax >> 14) & 0xfff, level == 3 ? count - 1 : 0u)
                << "L1/L2 per core, L3 shared";
            EXPECT_EQ(cache->eax & 0x3fff, host[2 + sub].eax & 0x3fff) << "cache type/level kept";
        }
        EXPECT_EQ(find(out, 4, 4)->eax, 0u);

        expect_topology(out, 0xb, index, count, core_bits);
        EXPECT_FALSE(find(out, 0x1f)) << "no leaf 0x1f when the host has none";
        EXPECT_EQ(find(out, 0)->eax, 0xdu);

        auto ext = find(out, 0x80000008);
        ASSERT_TRUE(ext);
        EXPECT_EQ(ext->eax, 0x3027u);
        EXPECT_EQ(ext->ecx, 0xfu) << "untouched";
    }
}

INSTANTIATE_TEST_SUITE_P(Counts, CpuidTopology,
                         ::testing::Values(Topology{1, 0}, Topology{2, 1}, Topology{8, 3},
                                           Topology{3, 2}, Topology{64, 6}));

TEST(Cpuid, HypervisorLeafNamesVireoAndKvmLeavesMoveUp) {
    std::vector<CpuidEntry> out = vcpu_cpuid(host_entries(false), 0, 1, false);
    auto vireo = find(out, 0x40000000);
    ASSERT_TRUE(vireo);
    char signature[13] = {};
    std::memcpy(signature, &vireo->ebx, 4);
    std::memcpy(signature + 4, &vireo->ecx, 4);
    std::memcpy(signature + 8, &vireo->edx, 4);
    EXPECT_STREQ(signature, "VireoVireoVM");
    EXPECT_EQ(vireo->eax, 0x40000000u);

    auto kvm = find(out, 0x40000100);
    ASSERT_TRUE(kvm);
    EXPECT_EQ(kvm->ebx, 0x4b4d564bu) << "KVMKVMKVM, where Linux's scan finds it";
    EXPECT_EQ(kvm->eax, 0x40000101u) << "its highest leaf moved too";
    auto features = find(out, 0x40000101);
    ASSERT_TRUE(features);
    EXPECT_EQ(features->eax, 0x01007afbu);
    EXPECT_FALSE(find(out, 0x40000001));
}

TEST(Cpuid, Leaf1fFollowsLeafBWhenTheHostHasIt) {
    std::vector<CpuidEntry> out = vcpu_cpuid(host_entries(true), 5, 8, false);
    expect_topology(out, 0xb, 5, 8, 3);
    expect_topology(out, 0x1f, 5, 8, 3);
    EXPECT_EQ(find(out, 0)->eax, 0x1fu);
}

TEST(Cpuid, MaxBasicLeafIsRaisedToReachLeafB) {
    std::vector<CpuidEntry> host = {{0, 0, 0, 4, 0, 0, 0}, {1, 0, 0, 0, 0, 0, 0}};
    std::vector<CpuidEntry> out = vcpu_cpuid(host, 1, 2, false);
    EXPECT_EQ(find(out, 0)->eax, 0xbu);
    expect_topology(out, 0xb, 1, 2, 1);
}

TEST(Cpuid, TscDeadlineTimerIsOfferedExactlyWhenKvmEmulatesIt) {
    constexpr uint32_t kTscDeadline = 1u << 24;
    std::vector<CpuidEntry> host = {{0, 0, 0, 0xb, 0, 0, 0}, {1, 0, 0, 0, 0, kTscDeadline, 0}};
    EXPECT_EQ(find(vcpu_cpuid(host, 0, 1, true), 1)->ecx & kTscDeadline, kTscDeadline);
    EXPECT_EQ(find(vcpu_cpuid(host, 0, 1, false), 1)->ecx & kTscDeadline, 0u);
    host[1].ecx = 0;
    EXPECT_EQ(find(vcpu_cpuid(host, 0, 1, true), 1)->ecx & kTscDeadline, kTscDeadline);
}

TEST(Cpuid, RefusesBadCounts) {
    std::vector<CpuidEntry> host = host_entries(false);
    EXPECT_THROW(vcpu_cpuid(host, 0, 0, false), Error);
    EXPECT_THROW(vcpu_cpuid(host, 0, 65, false), Error);
    EXPECT_THROW(vcpu_cpuid(host, 2, 2, false), Error);
}

}  // namespace
}  // namespace vireo::x86
