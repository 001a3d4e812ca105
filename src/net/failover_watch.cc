#include "net/failover_watch.h"

#include <libmnl/libmnl.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <poll.h>

#include <vector>

#include "base/error.h"

namespace vireo {
namespace {

struct Parse {
    uint32_t team_index;
    uint32_t active_index;
    bool seen = false;
};

int bond_attribute(const nlattr* attribute, void* data) {
    auto* parse = static_cast<Parse*>(data);
    if (mnl_attr_get_type(attribute) == IFLA_BOND_ACTIVE_SLAVE &&
        mnl_attr_validate(attribute, MNL_TYPE_U32) >= 0) {
        parse->active_index = mnl_attr_get_u32(attribute);
    }
    return MNL_CB_OK;
}

int link_info_attribute(const nlattr* attribute, void* data) {
    if (mnl_attr_get_type(attribute) == IFLA_INFO_DATA &&
        mnl_attr_validate(attribute, MNL_TYPE_NESTED) >= 0) {
        mnl_attr_parse_nested(attribute, bond_attribute, data);
    }
    return MNL_CB_OK;
}

int link_attribute(const nlattr* attribute, void* data) {
    if (mnl_attr_get_type(attribute) == IFLA_LINKINFO &&
        mnl_attr_validate(attribute, MNL_TYPE_NESTED) >= 0) {
        mnl_attr_parse_nested(attribute, link_info_attribute, data);
    }
    return MNL_CB_OK;
}

// One RTM_NEWLINK: the team's own tells its active member (absent: none).
int link_message(const nlmsghdr* message, void* data) {
    auto* parse = static_cast<Parse*>(data);
    if (message->nlmsg_type != RTM_NEWLINK ||
        mnl_nlmsg_get_payload_len(message) < sizeof(ifinfomsg)) {
        return MNL_CB_OK;
    }
    const auto* link = static_cast<const ifinfomsg*>(mnl_nlmsg_get_payload(message));
    if (static_cast<uint32_t>(link->ifi_index) == parse->team_index) {
        parse->seen = true;
        parse->active_index = 0;
        mnl_attr_parse(message, sizeof(ifinfomsg), link_attribute, data);
    }
    return MNL_CB_OK;
}

}  // namespace

FailoverWatch::FailoverWatch(const std::string& team)
    : team_(team),
      team_index_(::if_nametoindex(team.c_str())),
      socket_(mnl_socket_open2(NETLINK_ROUTE, SOCK_NONBLOCK | SOCK_CLOEXEC), mnl_socket_close) {
    if (team_index_ == 0) {
        fail_errno("team {}: no such interface", team_);
    }
    if (!socket_ || mnl_socket_bind(socket_.get(), RTMGRP_LINK, MNL_SOCKET_AUTOPID) < 0) {
        fail_errno("team {}: cannot listen for link events (netlink)", team_);
    }
    // Which member is active now: ask, and read the answer.
    std::vector<char> buffer(MNL_SOCKET_BUFFER_SIZE);
    nlmsghdr* request = mnl_nlmsg_put_header(buffer.data());
    request->nlmsg_type = RTM_GETLINK;
    request->nlmsg_flags = NLM_F_REQUEST;
    auto* link = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(request, sizeof(ifinfomsg)));
    link->ifi_family = AF_UNSPEC;
    link->ifi_index = static_cast<int>(team_index_);
    if (mnl_socket_sendto(socket_.get(), request, request->nlmsg_len) < 0) {
        fail_errno("team {}: cannot ask for its state (netlink)", team_);
    }
    receive(true);
}

FailoverWatch::~FailoverWatch() = default;

int FailoverWatch::fd() const {
    return mnl_socket_get_fd(socket_.get());
}

bool FailoverWatch::changed() {
    uint32_t before = active_index_;
    receive(false);
    return active_index_ != before && active_index_ != 0;
}

std::string FailoverWatch::active_member() const {
    char name[IF_NAMESIZE] = {};
    return active_index_ != 0 && ::if_indextoname(active_index_, name) ? name : "";
}

void FailoverWatch::receive(bool wait) {
    std::vector<char> buffer(MNL_SOCKET_BUFFER_SIZE);
    Parse parse{team_index_, active_index_};
    while (true) {
        if (wait) {
            pollfd ready{fd(), POLLIN, 0};
            ::poll(&ready, 1, 1000);
        }
        ssize_t length = mnl_socket_recvfrom(socket_.get(), buffer.data(), buffer.size());
        if (length <= 0) {
            break;  // EAGAIN: all read (an overrun, ENOBUFS, loses only old news)
        }
        mnl_cb_run(buffer.data(), static_cast<size_t>(length), 0, 0, link_message, &parse);
        if (wait && parse.seen) {
            break;
        }
    }
    if (parse.seen) {
        active_index_ = parse.active_index;
    }
}

}  // namespace vireo
