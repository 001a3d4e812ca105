#include "memory/guest_memory.h"

#include <sys/mman.h>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <utility>

#include "base/error.h"

namespace vireo {

namespace {

constexpr uint64_t kPageSize = 4096;
constexpr uint64_t kHugePageSize = 2 * 1024 * 1024;
constexpr const char* kHugePages = "/sys/kernel/mm/transparent_hugepage/enabled";

// Empty if anonymous memory may get transparent huge pages on madvise;
// otherwise the reason. The setting reads like "always [madvise] never".
std::string huge_page_support() {
    std::ifstream file(kHugePages);
    std::string settings((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    auto open = settings.find('[');
    auto close = settings.find(']', open);
    if (open == std::string::npos || close == std::string::npos) {
        return fmt::format("{} is not readable: no transparent huge pages", kHugePages);
    }
    std::string mode = settings.substr(open + 1, close - open - 1);
    if (mode == "never") {
        return fmt::format("{} is 'never' (set it to 'madvise' for huge pages)", kHugePages);
    }
    return "";
}

}  // namespace

GuestMemory GuestMemory::create(std::vector<Range> ranges) {
    GuestMemory memory;
    uint64_t total = 0;
    uint64_t previous_end = 0;
    for (const Range& range : ranges) {
        if (range.size == 0 || range.guest_address % kPageSize != 0 ||
            range.size % kPageSize != 0 || range.guest_address < previous_end) {
            fail("guest memory: range {:#x}+{:#x} is empty, unaligned or overlaps another",
                 range.guest_address, range.size);
        }
        previous_end = range.guest_address + range.size;
        total += range.size;
    }
    if (total == 0) {
        fail("guest memory: no RAM requested");
    }

    // Reserve one huge page more than needed, then map RAM at the first 2 MiB
    // boundary inside it, so guest huge pages line up with host ones.
    memory.reservation_size_ = total + kHugePageSize;
    void* reservation = ::mmap(nullptr, memory.reservation_size_, PROT_NONE,
                               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (reservation == MAP_FAILED) {
        fail_errno("guest memory: cannot reserve {} bytes of address space", total);
    }
    memory.reservation_ = static_cast<uint8_t*>(reservation);
    auto aligned =
        (reinterpret_cast<uintptr_t>(reservation) + kHugePageSize - 1) & ~(kHugePageSize - 1);
    void* mapped = ::mmap(reinterpret_cast<void*>(aligned), total, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
    if (mapped == MAP_FAILED) {
        fail_errno("guest memory: cannot map {} bytes", total);
    }
    memory.mapping_size_ = total;
    memory.huge_pages_why_not_ = huge_page_support();
    if (memory.huge_pages_why_not_.empty() && ::madvise(mapped, total, MADV_HUGEPAGE) != 0) {
        memory.huge_pages_why_not_ = "madvise(MADV_HUGEPAGE) was refused";
    }
    // Guest RAM is not the VMM's business in a core dump, and can be gigabytes;
    // nor is it copied into a child the VMM forks (its teardown helper).
    ::madvise(mapped, total, MADV_DONTDUMP);
    ::madvise(mapped, total, MADV_DONTFORK);

    uint64_t offset = 0;
    for (const Range& range : ranges) {
        memory.regions_.push_back(
            Region{range.guest_address, range.size, static_cast<uint8_t*>(mapped) + offset});
        offset += range.size;
    }
    return memory;
}

GuestMemory::GuestMemory(GuestMemory&& other) noexcept {
    *this = std::move(other);
}

GuestMemory& GuestMemory::operator=(GuestMemory&& other) noexcept {
    if (this != &other) {
        if (reservation_ != nullptr) {
            ::munmap(reservation_, reservation_size_);
        }
        reservation_ = std::exchange(other.reservation_, nullptr);
        reservation_size_ = std::exchange(other.reservation_size_, 0);
        mapping_size_ = std::exchange(other.mapping_size_, 0);
        huge_pages_why_not_ = std::move(other.huge_pages_why_not_);
        regions_ = std::move(other.regions_);
    }
    return *this;
}

GuestMemory::~GuestMemory() {
    if (reservation_ != nullptr) {
        ::munmap(reservation_, reservation_size_);
    }
}

const GuestMemory::Region* GuestMemory::find(uint64_t address, uint64_t length) const {
    for (const Region& region : regions_) {
        // Written so that no sum can overflow, whatever the guest passes in.
        if (address >= region.guest_address && address - region.guest_address < region.size &&
            length <= region.size - (address - region.guest_address)) {
            return &region;
        }
    }
    return nullptr;
}

bool GuestMemory::contains(uint64_t address, uint64_t length) const {
    return find(address, length) != nullptr;
}

std::optional<std::span<uint8_t>> GuestMemory::span(uint64_t address, uint64_t length) const {
    const Region* region = find(address, length);
    if (region == nullptr) {
        return std::nullopt;
    }
    return std::span<uint8_t>(region->host + (address - region->guest_address), length);
}

bool GuestMemory::read(uint64_t address, void* out, uint64_t length) const {
    auto bytes = span(address, length);
    if (!bytes) {
        return false;
    }
    if (length > 0) {  // memcpy with a null pointer is undefined even for 0 bytes
        std::memcpy(out, bytes->data(), length);
    }
    return true;
}

bool GuestMemory::write(uint64_t address, const void* in, uint64_t length) const {
    auto bytes = span(address, length);
    if (!bytes) {
        return false;
    }
    if (length > 0) {
        std::memcpy(bytes->data(), in, length);
    }
    return true;
}

bool GuestMemory::zero(uint64_t address, uint64_t length) const {
    const Region* region = find(address, length);
    if (region == nullptr) {
        return false;
    }
    uint64_t offset = address - region->guest_address;
    uint64_t first_page = (offset + kPageSize - 1) & ~(kPageSize - 1);
    uint64_t end_page = (offset + length) & ~(kPageSize - 1);
    if (first_page >= end_page) {
        std::memset(region->host + offset, 0, length);
        return true;
    }
    std::memset(region->host + offset, 0, first_page - offset);
    std::memset(region->host + end_page, 0, offset + length - end_page);
    // Private anonymous pages given back read as zeroes from then on.
    if (::madvise(region->host + first_page, end_page - first_page, MADV_DONTNEED) != 0) {
        std::memset(region->host + first_page, 0, end_page - first_page);
    }
    return true;
}

uint64_t GuestMemory::resident_bytes() const {
    if (regions_.empty()) {
        return 0;
    }
    // The regions are slices of one mapping, the first at its start.
    std::vector<unsigned char> pages((mapping_size_ + kPageSize - 1) / kPageSize);
    if (::mincore(regions_.front().host, mapping_size_, pages.data()) != 0) {
        return 0;
    }
    auto resident = std::count_if(pages.begin(), pages.end(),
                                  [](unsigned char page) { return (page & 1) != 0; });
    return static_cast<uint64_t>(resident) * kPageSize;
}

}  // namespace vireo
