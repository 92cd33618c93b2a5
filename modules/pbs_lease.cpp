// pbs_lease: takes, releases or marks failed the maintenance lease on the Proxmox VE node, so that PBS
// patching, PVE patching and OMV maintenance never overlap, and a failed run stops everyone until cleared.
#include "pbs_patch/lease.hpp"
#include "pbs_patch/module.hpp"
#include "pbs_patch/window.hpp"

#include <fmt/format.h>

#include <chrono>
#include <ctime>
#include <unistd.h>

namespace {

using nlohmann::json;
using namespace pbs_patch;

const ParamSpecs kSpec = {
    {.name = "state", .type = ParamType::Str, .default_value = "acquired", .choices = {"acquired", "released", "failed"}},
    {.name = "path", .type = ParamType::Path, .default_value = "/var/lib/pbs-patch/maintenance.lease"},
    {.name = "owner", .type = ParamType::Str},
    {.name = "purpose", .type = ParamType::Str, .default_value = ""},
    {.name = "host", .type = ParamType::Str},
    {.name = "ttl", .type = ParamType::Int, .default_value = 7200, .min_value = 1},
    {.name = "token", .type = ParamType::Str},
    {.name = "force", .type = ParamType::Bool, .default_value = false},
    {.name = "reason", .type = ParamType::Str, .default_value = ""},
    {.name = "lock_timeout", .type = ParamType::Int, .default_value = 30, .min_value = 1},
    {.name = "lock_dir", .type = ParamType::Str, .default_value = ""},
};

std::string hostname() {
    char buf[256] = {};
    if (::gethostname(buf, sizeof buf - 1) != 0) return "unknown";
    return buf;
}

json run_lease(Module& m) {
    LeaseRequest r;
    r.state = m.str("state");
    r.owner = m.str("owner");
    r.purpose = m.str("purpose");
    r.host = m.str("host").empty() ? hostname() : m.str("host");
    r.ttl_s = m.integer("ttl");
    r.token = m.str("token");
    r.force = m.boolean("force");
    r.reason = m.str("reason");
    r.now = static_cast<std::int64_t>(std::time(nullptr));
    if (r.state != "released" && r.owner.empty()) {
        throw ModuleFailure(fmt::format("owner is required to take or fail the lease (state: {})", r.state));
    }
    if (r.state == "released" && r.token.empty() && !r.force) {
        throw ModuleFailure("releasing the lease needs the holder's token (or force: true, which clears any lease)");
    }
    LeaseFileOptions options;
    options.check_mode = m.check_mode();
    options.lock_timeout = std::chrono::seconds(m.integer("lock_timeout"));
    options.cfs_lock_dir = m.str("lock_dir");
    const std::string path = m.str("path");
    LeaseOutcome out;
    try {
        out = apply_lease(path, r, options);
    } catch (const LeaseError& e) {
        throw ModuleFailure(fmt::format("maintenance lease {}: {}", path, e.what()), {{"path", path}});
    }
    for (const auto& w : out.decision.warnings) m.warn(w);
    const auto& d = out.decision;
    json result{{"changed", d.changed},
                {"lock", options.cfs_lock_dir.empty() ? fmt::format("flock {}.lock", path)
                                                      : fmt::format("cfs lock {}/{}", options.cfs_lock_dir,
                                                                    cfs_lock_id(path, options.cfs_lock_dir))},
                {"action", d.action},
                {"path", path},
                {"lease", d.next ? d.next->to_json() : json(nullptr)},
                {"previous", out.previous_raw},
                {"msg", m.check_mode() && d.changed ? fmt::format("{} (check mode: nothing written)", d.message) : d.message}};
    // The holder needs its token to release; a refusal never hands out the other holder's.
    if (!d.refused && d.next && d.next->state == "held") result["token"] = d.next->token;
    if (d.refused) {
        if (out.previous) {
            json holder = out.previous->to_json();
            holder.erase("token");
            result["holder"] = holder;
            result["lease"] = holder;
        }
        result["previous"] = nullptr;
        throw ModuleFailure(d.message, result);
    }
    return result;
}

}  // namespace

int main(int argc, char** argv) { return pbs_patch::run_module(argc, argv, kSpec, run_lease); }
