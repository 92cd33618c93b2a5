// pve_cluster: run on a Proxmox VE node, asks the cluster (pvesh) where the PBS VM is now and whether it may be
// touched: quorum, the inventory's node mapping, VMID + name, lock, HA state; running vzdump tasks that write
// to this PBS; and (for the scheduling gate) the vzdump jobs with their storage resolved through the nodes'
// vzdump defaults. It only reads: never changed, the same in check mode.
#include "pbs_patch/module.hpp"
#include "pbs_patch/pbs_jobs.hpp"
#include "pbs_patch/process.hpp"
#include "pbs_patch/pve_cluster.hpp"
#include "pbs_patch/pve_placement.hpp"
#include "pbs_patch/pve_tasks.hpp"
#include "pbs_patch/text.hpp"
#include "pbs_patch/window.hpp"

#include <fmt/format.h>

#include <chrono>
#include <map>
#include <optional>
#include <set>

namespace {

using nlohmann::json;
using namespace pbs_patch;

const ParamSpecs kSpec = {
    {.name = "vmid", .type = ParamType::Int, .required = true, .min_value = 100},
    {.name = "name", .type = ParamType::Str, .required = true},
    {.name = "phase", .type = ParamType::Str, .default_value = "preflight", .choices = {"preflight", "reboot", "verify"}},
    {.name = "nodes", .type = ParamType::List, .default_value = json::array(), .elements = ParamType::Dict},
    {.name = "group", .type = ParamType::Str, .default_value = ""},
    {.name = "asked_host", .type = ParamType::Str, .default_value = ""},
    {.name = "expect_node", .type = ParamType::Str, .default_value = ""},
    {.name = "previous_node", .type = ParamType::Str, .default_value = ""},
    {.name = "check_tasks", .type = ParamType::Bool, .default_value = true},
    {.name = "backup_jobs", .type = ParamType::Bool, .default_value = false},
    {.name = "pbs_servers", .type = ParamType::List, .default_value = json::array()},
    {.name = "pbs_datastores", .type = ParamType::List, .default_value = json::array()},
    {.name = "pvesh", .type = ParamType::Path, .default_value = "/usr/bin/pvesh"},
    {.name = "command_timeout", .type = ParamType::Int, .default_value = 30, .min_value = 1},
};

// A pvesh call that failed or printed garbage: another node may answer better.
struct ReadError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

class Cluster {
public:
    explicit Cluster(Module& m) : m_(m), phase_(parse_pve_phase(m.str("phase"))) {}

    json run() {
        const auto started = std::chrono::steady_clock::now();
        result_ = {{"changed", false}, {"answered", false}, {"refused", false}, {"phase", m_.str("phase")}};
        try {
            decide();
        } catch (const ReadError& e) {
            result_["duration_s"] = seconds_since(started);
            throw ModuleFailure(fmt::format("cannot read the Proxmox VE cluster state on {}: {}", asked(), e.what()),
                                result_);
        }
        result_["duration_s"] = seconds_since(started);
        result_["refused"] = refusal_.has_value();
        if (refusal_) throw ModuleFailure(*refusal_, result_);
        return result_;
    }

private:
    Module& m_;
    PvePhase phase_;
    json result_;
    std::optional<std::string> refusal_;
    std::optional<json> storage_;
    std::map<std::string, std::optional<VzdumpDefaults>> defaults_;
    std::vector<std::string> calls_;

    static double seconds_since(std::chrono::steady_clock::time_point t) {
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
    }

    std::string asked() const { return m_.str("asked_host").empty() ? std::string("this node") : m_.str("asked_host"); }

    std::string pvesh(const std::vector<std::string>& args) {
        std::vector<std::string> argv{m_.str("pvesh"), "get"};
        argv.insert(argv.end(), args.begin(), args.end());
        argv.insert(argv.end(), {"--output-format", "json"});
        RunOptions options;
        options.timeout = std::chrono::seconds(m_.integer("command_timeout"));
        const auto r = run_process(argv, options);
        const std::string shown = join(std::vector<std::string>(argv.begin() + 1, argv.end()), " ");
        calls_.push_back(shown);
        result_["pvesh_calls"] = calls_;
        if (r.rc == 0) return r.out;
        if (!r.started) throw ReadError(fmt::format("pvesh {}: {}", shown, r.error));
        if (r.timed_out) throw ReadError(fmt::format("pvesh {}: timed out after {} s", shown, m_.integer("command_timeout")));
        throw ReadError(fmt::format("pvesh {}: rc {}: {}", shown, r.rc, tail_lines(trim(r.err + " " + r.out), 3)));
    }

    template <typename F>
    auto parsed(const char* what, F&& parse) {
        try {
            return parse();
        } catch (const PveJsonError& e) {
            throw ReadError(e.what());
        } catch (const JobListError& e) {
            throw ReadError(fmt::format("{}: {}", what, e.what()));
        }
    }

    std::vector<NodeMapping> mapping() const {
        std::vector<NodeMapping> out;
        for (const auto& entry : m_.params().at("nodes")) {
            NodeMapping n;
            for (const auto& [key, value] : entry.items()) {
                if (key != "host" && key != "node") {
                    throw ModuleFailure(fmt::format("nodes: unknown key '{}' in {} (accepted: host, node)", key, entry.dump()));
                }
                if (!value.is_string() && !value.is_null()) {
                    throw ModuleFailure(fmt::format("nodes: '{}' must be a string in {}", key, entry.dump()));
                }
            }
            n.host = entry.value("host", json("")).is_string() ? entry.value("host", std::string()) : std::string();
            n.node = entry.contains("node") && entry["node"].is_string() ? entry["node"].get<std::string>() : std::string();
            if (n.host.empty()) throw ModuleFailure(fmt::format("nodes: entry without 'host': {}", entry.dump()));
            out.push_back(std::move(n));
        }
        return out;
    }

    const json& storage() {
        if (!storage_) {
            const std::string text = pvesh({"/storage"});
            storage_ = parsed("pvesh get /storage", [&] {
                json j = parse_pve_object_array(text, "pvesh get /storage");
                return j;
            });
            result_["storage"] = *storage_;
        }
        return *storage_;
    }

    std::map<std::string, std::string> targets() {
        const auto& st = storage();
        return parsed("pvesh get /storage", [&] {
            return pbs_target_storages(st, m_.list("pbs_servers"), m_.list("pbs_datastores"));
        });
    }

    // A node's vzdump defaults; nullopt when it cannot be read (the caller decides what that means).
    std::optional<VzdumpDefaults> node_defaults(const std::string& node) {
        if (auto it = defaults_.find(node); it != defaults_.end()) return it->second;
        std::optional<VzdumpDefaults> d;
        try {
            d = parse_vzdump_defaults(pvesh({fmt::format("/nodes/{}/vzdump/defaults", node)}));
        } catch (const ReadError& e) {
            m_.warn(fmt::format("cannot read the vzdump defaults of node {}: {}", node, e.what()));
        } catch (const PveJsonError& e) {
            m_.warn(fmt::format("cannot read the vzdump defaults of node {}: {}", node, e.what()));
        }
        defaults_[node] = d;
        json shown = json::object();
        for (const auto& [n, v] : defaults_) shown[n] = v ? v->to_json() : json(nullptr);
        result_["vzdump_defaults"] = shown;
        return d;
    }

    void decide() {
        const std::string status_text = pvesh({"/cluster/status"});
        const auto status = parsed("", [&] { return parse_cluster_status(status_text); });
        const std::string resources_text = pvesh({"/cluster/resources", "--type", "vm"});
        const auto resources = parsed("", [&] { return parse_cluster_resources(resources_text); });
        result_["answered"] = true;
        result_["cluster"] = status.to_json();

        PlacementRequest request;
        request.vmid = m_.integer("vmid");
        request.name = m_.str("name");
        request.mapping = mapping();
        request.group = m_.str("group");
        request.asked_host = m_.str("asked_host");
        request.expect_node = m_.str("expect_node");
        request.previous_node = m_.str("previous_node");
        request.phase = phase_;
        const Placement p = place_vm(status, resources, request);
        result_["placement"] = p.to_json();
        result_["single_node"] = p.single_node;
        result_["local_node"] = p.local_node;
        result_["vm"] = p.vm ? p.vm->to_json() : json(nullptr);
        result_["node"] = p.node.empty() ? json(nullptr) : json(p.node);
        result_["host"] = p.host.empty() ? json(nullptr) : json(p.host);
        result_["moved"] = p.moved;
        result_["ha_managed"] = p.vm && !p.vm->hastate.empty();
        result_["ha_state"] = (p.vm && !p.vm->hastate.empty()) ? json(p.vm->hastate) : json(nullptr);
        for (const auto& note : p.notes) m_.warn(note);
        if (p.refused) {
            refusal_ = p.message;
            return;
        }
        std::string tasks_text;
        if (m_.boolean("check_tasks") && phase_ != PvePhase::Verify) {
            tasks_text = check_tasks();
            if (refusal_) return;
        }
        if (m_.boolean("backup_jobs")) {
            backup_jobs(status);
            if (refusal_) return;
        }
        const std::string where =
            p.single_node ? fmt::format("single node '{}'", p.local_node)
                          : fmt::format("cluster '{}' (quorate, {} node(s))", status.name, status.nodes.size());
        result_["msg"] = fmt::format("VM {} ({}) is {} on node '{}' of {}{}; its qm commands run on inventory host '{}'.{}",
                                     request.vmid, request.name, p.vm ? p.vm->status : std::string("?"), p.node, where,
                                     p.vm && !p.vm->hastate.empty() ? fmt::format(", HA state '{}'", p.vm->hastate) : "",
                                     p.host, tasks_text.empty() ? std::string() : " " + tasks_text);
    }

    // A read failure after the VM was located is a refusal (fail closed), not a reason to ask another node:
    // the task list and the jobs are the cluster's, the same from every node.
    template <typename F>
    bool refuse_on_read_error(const char* what, F&& body) {
        try {
            body();
            return true;
        } catch (const ReadError& e) {
            refusal_ = fmt::format("Cannot read the {} on {} ({}), so {}: refusing. {}", what, asked(), e.what(),
                                   std::string(what) == "running Proxmox VE tasks"
                                       ? "a backup to this PBS could be running"
                                       : "a vzdump job could be due",
                                   phase_consequence(phase_));
            if (std::string(what) == "Proxmox VE backup jobs") {
                *refusal_ += " (pbs_patch_pve_backup_jobs=false skips them.)";
            }
            return false;
        }
    }

    std::string check_tasks() {
        std::string text;
        if (!refuse_on_read_error("running Proxmox VE tasks", [&] { text = pvesh({"/cluster/tasks"}); })) return {};
        std::vector<PveTask> tasks;
        if (!refuse_on_read_error("running Proxmox VE tasks", [&] {
                tasks = parsed("", [&] { return parse_cluster_tasks(text); });
            })) {
            return {};
        }
        std::vector<PveTask> running;
        for (const auto& t : tasks) {
            if (t.running()) running.push_back(t);
        }
        json findings = json::array();
        json running_json = json::array();
        std::vector<std::string> blocking;
        std::optional<std::map<std::string, std::string>> target_map;
        for (const auto& t : running) {
            running_json.push_back(t.to_json());
            if (t.type != "vzdump") continue;
            std::optional<VzdumpJobLine> line;
            try {
                line = find_vzdump_job_line(parse_task_log(pvesh({fmt::format("/nodes/{}/tasks/{}/log", t.node, t.upid)})));
            } catch (const ReadError& e) {
                m_.warn(fmt::format("cannot read the log of task {}: {}", t.upid, e.what()));
            } catch (const PveJsonError& e) {
                m_.warn(fmt::format("cannot read the log of task {}: {}", t.upid, e.what()));
            }
            std::optional<VzdumpDefaults> defaults;
            if (line && line->found && line->storage.empty() && line->dumpdir.empty()) defaults = node_defaults(t.node);
            if (!target_map && !refuse_on_read_error("running Proxmox VE tasks", [&] { target_map = targets(); })) {
                return {};
            }
            const auto f = judge_vzdump_task(t, line, defaults, *target_map);
            findings.push_back(f.to_json());
            if (f.blocks) {
                blocking.push_back(fmt::format("vzdump task {} on node {} (guest {}, started {}, user {}): {}", t.upid,
                                               t.node, t.id.empty() ? std::string("several") : t.id,
                                               format_local(t.starttime), t.user, f.why));
            }
        }
        result_["tasks"] = {{"running", running_json}, {"vzdump", findings}};
        if (!blocking.empty()) {
            const std::string wait = phase_ == PvePhase::Reboot
                                         ? "Rebooting PBS now would break it"
                                         : "Patching now would break it when PBS reboots";
            refusal_ = fmt::format("A backup to this PBS is running on Proxmox VE: {}. {}: let it finish, then rerun. {}",
                                   join(blocking, "; "), wait, phase_consequence(phase_));
            return {};
        }
        return fmt::format("No running vzdump task writes to this PBS ({} running task(s) in the cluster, {} vzdump).",
                           running.size(), findings.size());
    }

    void backup_jobs(const PveClusterStatus& status) {
        refuse_on_read_error("Proxmox VE backup jobs", [&] { read_backup_jobs(status); });
    }

    void read_backup_jobs(const PveClusterStatus& status) {
        const std::string text = pvesh({"/cluster/backup"});
        const json jobs = parsed("", [&] { return parse_pve_object_array(text, "pvesh get /cluster/backup"); });
        std::vector<std::string> online;
        for (const auto& n : status.nodes) {
            if (n.online) online.push_back(n.name);
        }
        const auto needed = parsed("", [&] { return nodes_needing_defaults(jobs, online); });
        std::map<std::string, VzdumpDefaults> defaults;
        std::vector<std::string> unreadable;
        for (const auto& node : needed) {
            if (!status.find(node)) {
                m_.warn(fmt::format("a vzdump job names node '{}', which is not in the cluster: it runs nowhere", node));
                continue;
            }
            if (!status.find(node)->online) continue;  // offline nodes run no job
            const auto d = node_defaults(node);
            if (d) defaults[node] = *d;
            else unreadable.push_back(node);
        }
        const auto target_map = targets();
        if (!unreadable.empty()) {
            refusal_ = fmt::format("Cannot read the vzdump defaults of node(s) {}, so a vzdump job without a storage could "
                                   "write to this PBS: refusing. {} (pbs_patch_pve_backup_jobs=false skips the PVE jobs.)",
                                   join(unreadable, ", "), phase_consequence(phase_));
            return;
        }
        result_["backup_jobs"] = parsed("", [&] { return resolve_job_storage(jobs, defaults, online, target_map); });
        storage();
    }
};

json run_cluster(Module& m) { return Cluster(m).run(); }

}  // namespace

int main(int argc, char** argv) { return pbs_patch::run_module(argc, argv, kSpec, run_cluster); }
