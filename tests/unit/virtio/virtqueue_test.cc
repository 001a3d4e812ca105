#include "devices/virtio/virtqueue.h"

#include <gtest/gtest.h>

#include "base/byte_size.h"
#include "devices/virtio/virtio_spec.h"
#include "driver_queue.h"

namespace vireo {
namespace {

using testing::Buf;
using testing::DriverQueue;

constexpr uint64_t kRam = 16 * MiB;
constexpr uint64_t kRings = 0x10000;
constexpr uint64_t kData = 0x100000;
constexpr uint64_t kIndirect = uint64_t{1} << virtio::kFeatureIndirectDesc;
constexpr uint64_t kEventIdx = uint64_t{1} << virtio::kFeatureEventIdx;

class VirtqueueTest : public ::testing::Test {
protected:
    Virtqueue make_queue(uint64_t features = 0,
                         uint64_t max_bytes = Virtqueue::kDefaultMaxChainBytes) {
        return Virtqueue(memory, driver.config(), features, max_bytes);
    }
    // Pops from a queue expected to be broken with `error`.
    void expect_fault(Virtqueue& queue, VirtqueueError error) {
        EXPECT_EQ(queue.pop(), std::nullopt);
        ASSERT_TRUE(queue.fault().has_value());
        EXPECT_EQ(queue.fault()->error, error)
            << to_string(queue.fault()->error) << ": " << queue.fault()->detail;
        EXPECT_FALSE(queue.ready());
    }

    GuestMemory memory = GuestMemory::create({{0, kRam}});
    DriverQueue driver{memory, 8, kRings};
};

TEST_F(VirtqueueTest, PopsASimpleChainAndReturnsIt) {
    Virtqueue queue = make_queue();
    EXPECT_TRUE(queue.ready());
    EXPECT_EQ(queue.pop(), std::nullopt);  // nothing offered yet

    uint16_t head =
        driver.add_chain({{kData, 16}, {kData + 0x1000, 512, true}, {kData + 0x2000, 64, true}});
    driver.make_available(head);
    auto chain = queue.pop();
    ASSERT_TRUE(chain.has_value());
    EXPECT_EQ(chain->head, head);
    EXPECT_EQ(chain->readable, (std::vector<GuestBuffer>{{kData, 16}}));
    EXPECT_EQ(chain->writable,
              (std::vector<GuestBuffer>{{kData + 0x1000, 512}, {kData + 0x2000, 64}}));
    EXPECT_EQ(queue.pop(), std::nullopt);

    queue.push(chain->head, 300);
    EXPECT_EQ(driver.used_idx(), 1);
    EXPECT_EQ(driver.used(0).id, head);
    EXPECT_EQ(driver.used(0).len, 300u);
    EXPECT_FALSE(queue.fault().has_value());
}

TEST_F(VirtqueueTest, IndexesWrapAround) {
    // 70000 chains through an 8-entry queue: both 16-bit indexes wrap.
    Virtqueue queue = make_queue();
    for (uint32_t i = 0; i < 70000; ++i) {
        uint16_t head = driver.add_chain({{kData + 8 * (i % 8), 8, true}});
        driver.make_available(head);
        auto chain = queue.pop();
        ASSERT_TRUE(chain.has_value()) << i;
        ASSERT_EQ(chain->head, head);
        queue.push(chain->head, i % 8);
    }
    EXPECT_EQ(driver.used_idx(), static_cast<uint16_t>(70000));
    EXPECT_EQ(driver.used(static_cast<uint16_t>(69999)).len, 69999u % 8);
    EXPECT_FALSE(queue.fault().has_value());
}

TEST_F(VirtqueueTest, FollowsAnIndirectTable) {
    Virtqueue queue = make_queue(kIndirect);
    uint16_t head = driver.add_indirect(
        kData + 0x8000, {{kData, 10}, {kData + 0x100, 20}, {kData + 0x200, 30, true}});
    driver.make_available(head);
    auto chain = queue.pop();
    ASSERT_TRUE(chain.has_value());
    EXPECT_EQ(chain->head, head);
    EXPECT_EQ(chain->readable, (std::vector<GuestBuffer>{{kData, 10}, {kData + 0x100, 20}}));
    EXPECT_EQ(chain->writable, (std::vector<GuestBuffer>{{kData + 0x200, 30}}));
}

TEST_F(VirtqueueTest, FollowsDirectDescriptorsIntoAnIndirectTable) {
    Virtqueue queue = make_queue(kIndirect);
    // Descriptor 0 (readable) -> descriptor 1 (indirect: two writable buffers).
    driver.set_desc(0, kData, 16, virtio::kDescFlagNext, 1);
    virtio::VirtqDesc table[2] = {
        {kData + 0x100, 8, virtio::kDescFlagWrite | virtio::kDescFlagNext, 1},
        {kData + 0x200, 8, virtio::kDescFlagWrite, 0}};
    ASSERT_TRUE(memory.write(kData + 0x8000, table, sizeof(table)));
    driver.set_desc(1, kData + 0x8000, sizeof(table), virtio::kDescFlagIndirect);
    driver.make_available(0);
    auto chain = queue.pop();
    ASSERT_TRUE(chain.has_value());
    EXPECT_EQ(chain->readable.size(), 1u);
    EXPECT_EQ(chain->writable.size(), 2u);
}

TEST_F(VirtqueueTest, NoInterruptFlagSuppressesNotifications) {
    Virtqueue queue = make_queue();
    EXPECT_FALSE(queue.needs_interrupt());  // nothing used yet
    driver.make_available(driver.add_chain({{kData, 8, true}}));
    queue.push(queue.pop()->head, 8);
    EXPECT_TRUE(queue.needs_interrupt());
    EXPECT_FALSE(queue.needs_interrupt());  // already told

    driver.set_avail_flags(virtio::kAvailFlagNoInterrupt);
    driver.make_available(driver.add_chain({{kData, 8, true}}));
    queue.push(queue.pop()->head, 8);
    EXPECT_FALSE(queue.needs_interrupt());
}

TEST_F(VirtqueueTest, EventIdxInterruptsWhenUsedEventIsPassed) {
    Virtqueue queue = make_queue(kEventIdx);
    // Ignored with VIRTIO_F_EVENT_IDX: only used_event counts.
    driver.set_avail_flags(virtio::kAvailFlagNoInterrupt);
    driver.set_used_event(2);  // "interrupt me once you have used entry 2"
    for (int i = 0; i < 4; ++i) {
        driver.make_available(driver.add_chain({{kData, 8, true}}));
    }
    queue.push(queue.pop()->head, 1);  // entry 0
    EXPECT_FALSE(queue.needs_interrupt());
    queue.push(queue.pop()->head, 1);  // entry 1
    EXPECT_FALSE(queue.needs_interrupt());
    queue.push(queue.pop()->head, 1);  // entry 2
    EXPECT_TRUE(queue.needs_interrupt());
    queue.push(queue.pop()->head, 1);  // entry 3
    EXPECT_FALSE(queue.needs_interrupt());

    // A batch that crosses used_event asks once.
    driver.set_used_event(5);
    for (int i = 0; i < 3; ++i) {
        driver.make_available(driver.add_chain({{kData, 8, true}}));
    }
    while (auto chain = queue.pop()) {
        queue.push(chain->head, 1);
    }
    EXPECT_TRUE(queue.needs_interrupt());
}

TEST_F(VirtqueueTest, EventIdxAsksForTheNextKickWhenEmpty) {
    Virtqueue queue = make_queue(kEventIdx);
    for (int i = 0; i < 3; ++i) {
        driver.make_available(driver.add_chain({{kData, 8, true}}));
    }
    int popped = 0;
    while (queue.pop()) {
        ++popped;
    }
    EXPECT_EQ(popped, 3);
    EXPECT_EQ(driver.avail_event(), 3);  // kick me when you add entry 3
}

TEST_F(VirtqueueTest, NotificationsOffLeaveAvailEventBehindUntilTurnedOn) {
    Virtqueue queue = make_queue(kEventIdx);
    driver.make_available(driver.add_chain({{kData, 8, true}}));
    while (queue.pop()) {
    }
    EXPECT_EQ(driver.avail_event(), 1);
    queue.set_notifications(false);
    driver.make_available(driver.add_chain({{kData, 8, true}}));
    ASSERT_EQ(queue.newly_available(), 1);
    while (queue.pop()) {
    }
    EXPECT_EQ(driver.avail_event(), 1);  // entry 2 will cross nothing: no kick
    queue.set_notifications(true);
    EXPECT_EQ(driver.avail_event(), 2);  // the next one does
}

TEST_F(VirtqueueTest, NotificationsOnAskOnlyForTheKickPopWouldHaveAskedFor) {
    Virtqueue queue = make_queue(kEventIdx);
    for (int i = 0; i < 4; ++i) {
        driver.make_available(driver.add_chain({{kData, 8, true}}));
    }
    queue.pop();  // as a receive queue does: one buffer for one frame, the rest kept
    queue.set_notifications(false);
    queue.pop();
    queue.set_notifications(true);
    EXPECT_EQ(driver.avail_event(), 0);  // never asked for: refills need no kick
}

TEST_F(VirtqueueTest, NotificationsOffSetsNoNotifyWithoutEventIdx) {
    Virtqueue queue = make_queue();
    queue.set_notifications(false);
    EXPECT_EQ(driver.used_flags(), virtio::kUsedFlagNoNotify);
    queue.set_notifications(true);
    EXPECT_EQ(driver.used_flags(), 0);
}

TEST_F(VirtqueueTest, NewlyAvailableCountsOnceWhatPopHasNotTaken) {
    Virtqueue queue = make_queue(kEventIdx);
    EXPECT_EQ(queue.newly_available(), 0);
    for (int i = 0; i < 3; ++i) {
        driver.make_available(driver.add_chain({{kData, 8, true}}));
    }
    EXPECT_EQ(queue.newly_available(), 3);
    EXPECT_EQ(queue.newly_available(), 0);  // nothing newer since
    driver.make_available(driver.add_chain({{kData, 8, true}}));
    while (queue.pop()) {
    }
    EXPECT_EQ(queue.newly_available(), 0);  // new, but taken already
    // What pop() saw counts as seen: only the two added after it are new.
    driver.make_available(driver.add_chain({{kData, 8, true}}));
    queue.pop();
    driver.make_available(driver.add_chain({{kData, 8, true}}));
    driver.make_available(driver.add_chain({{kData, 8, true}}));
    EXPECT_EQ(queue.newly_available(), 2);
}

TEST_F(VirtqueueTest, NewlyAvailableCountsAQueueAtMostForAHostileIndex) {
    Virtqueue queue = make_queue(kEventIdx);
    driver.make_available(driver.add_chain({{kData, 8, true}}));
    driver.set_avail_idx(1000);
    EXPECT_EQ(queue.newly_available(), queue.size());
}

// ---- Hostile drivers ----

TEST_F(VirtqueueTest, RefusesInvalidSizes) {
    for (uint16_t size : {0, 3, 100}) {
        VirtqueueConfig config = driver.config();
        config.size = size;
        Virtqueue queue(memory, config, 0);
        expect_fault(queue, VirtqueueError::kInvalidSize);
    }
}

TEST_F(VirtqueueTest, RefusesMisalignedRings) {
    VirtqueueConfig config = driver.config();
    config.desc_table += 8;
    Virtqueue desc(memory, config, 0);
    expect_fault(desc, VirtqueueError::kRingMisaligned);
    config = driver.config();
    config.used_ring += 2;
    Virtqueue used(memory, config, 0);
    expect_fault(used, VirtqueueError::kRingMisaligned);
}

TEST_F(VirtqueueTest, RefusesRingsOutsideMemory) {
    for (uint64_t address : {kRam - 16, kRam, uint64_t{0xffff'ffff'ffff'fff0}}) {
        VirtqueueConfig config = driver.config();
        config.desc_table = address;
        Virtqueue desc(memory, config, 0);
        expect_fault(desc, VirtqueueError::kRingOutsideMemory);
        config = driver.config();
        config.used_ring = address;
        Virtqueue used(memory, config, 0);
        expect_fault(used, VirtqueueError::kRingOutsideMemory);
    }
}

TEST_F(VirtqueueTest, RefusesBuffersOutsideMemory) {
    for (auto [address, length] :
         {std::pair<uint64_t, uint32_t>{kRam, 1}, {kRam - 4, 8}, {0xffff'ffff'ffff'fff0, 0x20}}) {
        DriverQueue fresh(memory, 8, kRings);
        Virtqueue queue(memory, fresh.config(), 0);
        fresh.make_available(fresh.add_chain({{kData, 8}, {address, length, true}}));
        expect_fault(queue, VirtqueueError::kBufferOutsideMemory);
    }
}

TEST_F(VirtqueueTest, RefusesHeadAndNextIndexesOutOfRange) {
    Virtqueue queue = make_queue();
    driver.make_available(8);  // a head past the 8-entry table
    expect_fault(queue, VirtqueueError::kDescriptorIndexOutOfRange);

    DriverQueue fresh(memory, 8, kRings);
    Virtqueue second(memory, fresh.config(), 0);
    fresh.set_desc(0, kData, 8, virtio::kDescFlagNext, 9);
    fresh.make_available(0);
    expect_fault(second, VirtqueueError::kDescriptorIndexOutOfRange);
}

TEST_F(VirtqueueTest, RefusesLoops) {
    Virtqueue queue = make_queue();
    driver.set_desc(0, kData, 8, virtio::kDescFlagNext, 1);
    driver.set_desc(1, kData, 8, virtio::kDescFlagNext, 0);
    driver.make_available(0);
    expect_fault(queue, VirtqueueError::kDescriptorLoop);

    DriverQueue fresh(memory, 8, kRings);
    Virtqueue self(memory, fresh.config(), 0);
    fresh.set_desc(3, kData, 8, virtio::kDescFlagNext, 3);
    fresh.make_available(3);
    expect_fault(self, VirtqueueError::kDescriptorLoop);
}

TEST_F(VirtqueueTest, RefusesLoopsInsideAnIndirectTable) {
    Virtqueue queue = make_queue(kIndirect);
    virtio::VirtqDesc table[2] = {{kData, 8, virtio::kDescFlagNext, 1},
                                  {kData, 8, virtio::kDescFlagNext, 0}};
    ASSERT_TRUE(memory.write(kData + 0x8000, table, sizeof(table)));
    driver.set_desc(0, kData + 0x8000, sizeof(table), virtio::kDescFlagIndirect);
    driver.make_available(0);
    expect_fault(queue, VirtqueueError::kDescriptorLoop);
}

TEST_F(VirtqueueTest, RefusesIndirectMisuse) {
    struct Case {
        uint64_t features;
        uint16_t flags;
        uint64_t table;
        uint32_t length;
        bool nested;
        VirtqueueError error;
    };
    const uint64_t table = kData + 0x8000;
    for (const Case& c : {
             Case{0, virtio::kDescFlagIndirect, table, 32, false,
                  VirtqueueError::kIndirectNotNegotiated},
             Case{kIndirect, virtio::kDescFlagIndirect | virtio::kDescFlagNext, table, 32, false,
                  VirtqueueError::kIndirectWithNext},
             Case{kIndirect, virtio::kDescFlagIndirect, table, 0, false,
                  VirtqueueError::kBadIndirectTable},
             Case{kIndirect, virtio::kDescFlagIndirect, table, 24, false,
                  VirtqueueError::kBadIndirectTable},
             Case{kIndirect, virtio::kDescFlagIndirect, kRam - 16, 32, false,
                  VirtqueueError::kBadIndirectTable},
             Case{kIndirect, virtio::kDescFlagIndirect, 0, 16 * 32769, false,
                  VirtqueueError::kBadIndirectTable},
             Case{kIndirect, virtio::kDescFlagIndirect, table, 32, true,
                  VirtqueueError::kNestedIndirect},
         }) {
        DriverQueue fresh(memory, 8, kRings);
        Virtqueue queue(memory, fresh.config(), c.features);
        virtio::VirtqDesc entries[2] = {
            {kData, 8, static_cast<uint16_t>(c.nested ? virtio::kDescFlagIndirect : 0), 0},
            {kData, 8, 0, 0}};
        ASSERT_TRUE(memory.write(table, entries, sizeof(entries)));
        fresh.set_desc(0, c.table, c.length, c.flags, 1);
        fresh.set_desc(1, kData, 8, 0);
        fresh.make_available(0);
        expect_fault(queue, c.error);
    }
}

TEST_F(VirtqueueTest, RefusesAnAvailIndexThatJumpsTooFar) {
    Virtqueue queue = make_queue();
    driver.set_avail_idx(9);  // 9 new entries in an 8-entry ring
    expect_fault(queue, VirtqueueError::kAvailIndexJump);
}

TEST_F(VirtqueueTest, RefusesChainsOverTheByteLimit) {
    Virtqueue queue = make_queue(0, 1000);
    driver.make_available(driver.add_chain({{kData, 600, true}, {kData, 600, true}}));
    expect_fault(queue, VirtqueueError::kChainTooLarge);
}

TEST_F(VirtqueueTest, DefaultLimitIsWhatTheUsedLengthCanReport) {
    // 257 descriptors of 16 MiB: just over 4 GiB, all inside guest RAM.
    DriverQueue big(memory, 512, kRings);
    Virtqueue queue(memory, big.config(), 0);
    std::vector<Buf> bufs(257, Buf{0, static_cast<uint32_t>(kRam), true});
    big.make_available(big.add_chain(bufs));
    expect_fault(queue, VirtqueueError::kChainTooLarge);
}

TEST_F(VirtqueueTest, RefusesReadableAfterWritable) {
    Virtqueue queue = make_queue();
    driver.make_available(driver.add_chain({{kData, 8, true}, {kData + 8, 8, false}}));
    expect_fault(queue, VirtqueueError::kReadableAfterWritable);
}

TEST_F(VirtqueueTest, ABrokenQueueStaysBroken) {
    Virtqueue queue = make_queue();
    driver.make_available(8);
    expect_fault(queue, VirtqueueError::kDescriptorIndexOutOfRange);
    // Even a good chain afterwards is not taken, and nothing is written back.
    driver.make_available(driver.add_chain({{kData, 8, true}}));
    EXPECT_EQ(queue.pop(), std::nullopt);
    queue.push(0, 8);
    EXPECT_EQ(driver.used_idx(), 0);
    EXPECT_FALSE(queue.needs_interrupt());
    EXPECT_EQ(queue.fault()->error, VirtqueueError::kDescriptorIndexOutOfRange);
}

TEST_F(VirtqueueTest, PushingAnUnknownHeadBreaksTheQueue) {
    Virtqueue queue = make_queue();
    queue.push(8, 0);
    ASSERT_TRUE(queue.fault().has_value());
    EXPECT_EQ(queue.fault()->error, VirtqueueError::kInvalidUsedHead);
    EXPECT_EQ(driver.used_idx(), 0);
}

TEST(Virtqueue, DefaultConstructedIsInert) {
    Virtqueue queue;
    EXPECT_FALSE(queue.ready());
    EXPECT_EQ(queue.pop(), std::nullopt);
    EXPECT_FALSE(queue.fault().has_value());
    queue.push(0, 0);
    EXPECT_FALSE(queue.needs_interrupt());
}

}  // namespace
}  // namespace vireo
