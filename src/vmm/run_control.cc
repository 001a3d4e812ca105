#include "vmm/run_control.h"

#include <signal.h>

#include <algorithm>

#include "kvm/vcpu.h"

namespace vireo {

namespace {

void ignore_kick(int) {}

}  // namespace

int RunControl::kick_signal() {
    return SIGRTMIN;
}

RunControl::RunControl() {
    struct sigaction action {};
    action.sa_handler = ignore_kick;
    sigemptyset(&action.sa_mask);
    action.sa_flags = 0;  // no SA_RESTART: KVM_RUN must return EINTR
    sigaction(kick_signal(), &action, nullptr);
}

void RunControl::attach(kvm::Vcpu& vcpu) {
    std::lock_guard lock(mutex_);
    members_.push_back(Member{&vcpu, pthread_self()});
    // Let a vCPU thread see the kick signal even if its creator blocked it.
    sigset_t kick;
    sigemptyset(&kick);
    sigaddset(&kick, kick_signal());
    pthread_sigmask(SIG_UNBLOCK, &kick, nullptr);
}

void RunControl::detach(kvm::Vcpu& vcpu) {
    std::lock_guard lock(mutex_);
    std::erase_if(members_, [&vcpu](const Member& member) { return member.vcpu == &vcpu; });
    changed_.notify_all();
}

bool RunControl::wait_until_runnable(kvm::Vcpu& vcpu) {
    std::unique_lock lock(mutex_);
    if (state_ == State::Paused) {
        ++parked_;
        changed_.notify_all();
        changed_.wait(lock, [this] { return state_ != State::Paused; });
        --parked_;
    }
    if (state_ == State::Stopping) {
        return false;
    }
    vcpu.set_immediate_exit(false);
    return true;
}

void RunControl::pause() {
    std::unique_lock lock(mutex_);
    if (state_ != State::Running) {
        return;
    }
    state_ = State::Paused;
    kick_all();
    changed_.wait(lock, [this] { return parked_ >= members_.size() || state_ != State::Paused; });
}

void RunControl::resume() {
    std::lock_guard lock(mutex_);
    if (state_ == State::Paused) {
        state_ = State::Running;
        changed_.notify_all();
    }
}

void RunControl::stop() {
    std::lock_guard lock(mutex_);
    state_ = State::Stopping;
    kick_all();
    changed_.notify_all();
}

RunControl::State RunControl::state() const {
    std::lock_guard lock(mutex_);
    return state_;
}

void RunControl::kick_all() {
    for (const Member& member : members_) {
        member.vcpu->set_immediate_exit(true);
        // Kicking the calling thread itself is harmless: its handler is empty
        // and its next KVM_RUN sees immediate_exit.
        pthread_kill(member.thread, kick_signal());
    }
}

}  // namespace vireo
