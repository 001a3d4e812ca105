#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "base/event_fd.h"
#include "devices/interrupts.h"

namespace vireo::testing {

// What happened to one MSI vector; shared with the vector so it outlives it.
class VectorRecord {
public:
    void set_message(const MsiMessage& message) {
        std::lock_guard lock(mutex_);
        messages_.push_back(message);
    }
    // As KVM's irqfd: there once a message is programmed.
    int direct_fd() const {
        std::lock_guard lock(mutex_);
        return messages_.empty() ? -1 : direct_.fd();
    }
    const EventFd& direct() const { return direct_; }
    void trigger() {
        std::lock_guard lock(mutex_);
        ++triggers_;
        changed_.notify_all();
    }
    int triggers() const {
        std::lock_guard lock(mutex_);
        return triggers_;
    }
    std::vector<MsiMessage> messages() const {
        std::lock_guard lock(mutex_);
        return messages_;
    }
    // Waits until at least `count` triggers happened; false on timeout.
    bool wait_for_triggers(int count, std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
        std::unique_lock lock(mutex_);
        return changed_.wait_for(lock, timeout, [&] { return triggers_ >= count; });
    }

private:
    mutable std::mutex mutex_;
    std::condition_variable changed_;
    std::vector<MsiMessage> messages_;
    int triggers_ = 0;
    EventFd direct_;
};

class FakeMsiController : public MsiController {
public:
    std::unique_ptr<MsiVector> create_vector() override {
        auto record = std::make_shared<VectorRecord>();
        std::lock_guard lock(mutex_);
        records_.push_back(record);
        return std::make_unique<Vector>(record);
    }
    VectorRecord& vector(size_t index) {
        std::lock_guard lock(mutex_);
        return *records_.at(index);
    }
    size_t vector_count() const {
        std::lock_guard lock(mutex_);
        return records_.size();
    }

private:
    class Vector : public MsiVector {
    public:
        explicit Vector(std::shared_ptr<VectorRecord> record) : record_(std::move(record)) {}
        void set_message(const MsiMessage& message) override { record_->set_message(message); }
        void trigger() override { record_->trigger(); }
        int direct_fd() const override { return record_->direct_fd(); }

    private:
        std::shared_ptr<VectorRecord> record_;
    };

    mutable std::mutex mutex_;
    std::vector<std::shared_ptr<VectorRecord>> records_;
};

// Records the doorbells bound; a test "kicks" by signalling the bound EventFd,
// as KVM would on a guest write.
class FakeIoEventRegistry : public IoEventRegistry {
public:
    struct Bound {
        uint32_t length;
        const EventFd* event;
    };

    std::unique_ptr<IoEventBinding> bind_mmio(uint64_t address, uint32_t length,
                                              const EventFd& event) override {
        std::lock_guard lock(mutex_);
        bindings_[address] = Bound{length, &event};
        return std::make_unique<Binding>(*this, address);
    }
    std::optional<Bound> at(uint64_t address) const {
        std::lock_guard lock(mutex_);
        auto found = bindings_.find(address);
        if (found == bindings_.end()) {
            return std::nullopt;
        }
        return found->second;
    }
    size_t count() const {
        std::lock_guard lock(mutex_);
        return bindings_.size();
    }

private:
    class Binding : public IoEventBinding {
    public:
        Binding(FakeIoEventRegistry& registry, uint64_t address)
            : registry_(registry), address_(address) {}
        ~Binding() override {
            std::lock_guard lock(registry_.mutex_);
            registry_.bindings_.erase(address_);
        }

    private:
        FakeIoEventRegistry& registry_;
        uint64_t address_;
    };

    mutable std::mutex mutex_;
    std::map<uint64_t, Bound> bindings_;
};

}  // namespace vireo::testing
