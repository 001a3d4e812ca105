#pragma once

#include <pthread.h>

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <vector>

namespace vireo {

namespace kvm {
class Vcpu;
}

// The run state shared by all vCPU threads: running, paused or stopping.
// Pausing and stopping must work even while a vCPU sits inside KVM_RUN and the
// guest never exits (a ring-0 loop with interrupts off): the controller sets immediate_exit and
// sends the thread a signal, both under the lock the vCPU thread takes before
// each KVM_RUN, so no request is lost between the check and the entry.
class RunControl {
public:
    enum class State { Running, Paused, Stopping };

    // Installs the (empty) handler of the kick signal, once per process.
    RunControl();

    // Called by each vCPU thread on start and exit.
    void attach(kvm::Vcpu& vcpu);
    void detach(kvm::Vcpu& vcpu);

    // Called by a vCPU thread before each KVM_RUN: parks while paused, returns
    // false when the thread must end.
    bool wait_until_runnable(kvm::Vcpu& vcpu);

    // From any thread other than a vCPU's own: returns once every vCPU thread is parked.
    void pause();
    void resume();
    // From any thread, vCPU threads included.
    void stop();
    State state() const;

    // The signal used to kick vCPU threads out of KVM_RUN.
    static int kick_signal();

private:
    struct Member {
        kvm::Vcpu* vcpu;
        pthread_t thread;
    };
    void kick_all();  // caller holds mutex_

    mutable std::mutex mutex_;
    std::condition_variable changed_;
    State state_ = State::Running;
    std::vector<Member> members_;
    size_t parked_ = 0;
};

}  // namespace vireo
