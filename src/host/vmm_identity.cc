#include "host/vmm_identity.h"

#include <limits>

#include <nlohmann/json.hpp>

#include "base/error.h"

namespace vireo {

VmmIdentity vmm_identity(uid_t base, uint32_t slot) {
    constexpr uint64_t kHighestId = std::numeric_limits<int32_t>::max();
    if (slot >= kMaxVmmSlots || uint64_t{base} + slot > kHighestId) {
        fail("VMM uid base {} + slot {}: beyond the {} VMs or the uid {} this host allows", base,
             slot, kMaxVmmSlots, kHighestId);
    }
    return VmmIdentity{base + slot, base + slot};
}

uint32_t VmmSlots::slot_of(std::string_view vm) {
    auto found = slots.find(vm);
    if (found != slots.end()) {
        return found->second;
    }
    uint32_t slot = next++;
    slots.emplace(std::string(vm), slot);
    return slot;
}

VmmIdentities::VmmIdentities(std::filesystem::path state_dir, uid_t base)
    : file_(std::move(state_dir), "vmm-identities", 1), base_(base) {}

VmmSlots VmmIdentities::load() const {
    VmmSlots known;
    if (std::optional<nlohmann::json> document = file_.load()) {
        try {
            known.next = document->at("next").get<uint32_t>();
            known.slots = document->at("slots").get<std::map<std::string, uint32_t, std::less<>>>();
        } catch (const nlohmann::json::exception& error) {
            fail("{}: malformed ({}); fix or remove the file", file_.file().string(), error.what());
        }
    }
    return known;
}

VmmIdentity VmmIdentities::of(std::string_view vm) {
    StateFile::Lock lock = file_.lock(true);
    VmmSlots known = load();
    size_t before = known.slots.size();
    uint32_t slot = known.slot_of(vm);
    if (known.slots.size() != before) {
        file_.store({{"next", known.next}, {"slots", known.slots}});
    }
    return vmm_identity(base_, slot);
}

std::optional<VmmIdentity> VmmIdentities::find(std::string_view vm) {
    StateFile::Lock lock = file_.lock(false);
    VmmSlots known = load();
    auto found = known.slots.find(vm);
    if (found == known.slots.end()) {
        return std::nullopt;
    }
    return vmm_identity(base_, found->second);
}

}  // namespace vireo
