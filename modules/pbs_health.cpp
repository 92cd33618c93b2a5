// pbs_health: post-reboot verification of a PBS host. Services must be active and enabled, datastores
// present, and (when asked) the boot id new; versions, tasks and system facts are reported for the
// notification. It only reads: never changed, same result in check mode.
#include "pbs_patch/datastores.hpp"
#include "pbs_patch/dpkg_state.hpp"
#include "pbs_patch/kernels.hpp"
#include "pbs_patch/module.hpp"
#include "pbs_patch/pbs_versions.hpp"
#include "pbs_patch/port_probe.hpp"
#include "pbs_patch/process.hpp"
#include "pbs_patch/reboot_flag.hpp"
#include "pbs_patch/system_info.hpp"
#include "pbs_patch/systemd_units.hpp"
#include "pbs_patch/task_list.hpp"
#include "pbs_patch/text.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <thread>

namespace {

using nlohmann::json;
using namespace pbs_patch;
using Clock = std::chrono::steady_clock;

const ParamSpecs kSpec = {
    {.name = "services", .type = ParamType::List,
     .default_value = json::array({"proxmox-backup", "proxmox-backup-proxy"})},
    {.name = "task_limit", .type = ParamType::Int, .default_value = 10, .min_value = 1},
    {.name = "check_datastores", .type = ParamType::Bool, .default_value = true},
    {.name = "expect_boot_id_not", .type = ParamType::Str},
    {.name = "pbm_path", .type = ParamType::Path, .default_value = "/usr/sbin/proxmox-backup-manager"},
    {.name = "pbs_package", .type = ParamType::Str, .default_value = "proxmox-backup-server"},
    {.name = "root_path", .type = ParamType::Path, .default_value = "/"},
    {.name = "proc_path", .type = ParamType::Path, .default_value = "/proc"},
    {.name = "boot_path", .type = ParamType::Path, .default_value = "/boot"},
    {.name = "reboot_required_file", .type = ParamType::Path, .default_value = "/var/run/reboot-required"},
    {.name = "command_timeout", .type = ParamType::Int, .default_value = 60, .min_value = 1},
    {.name = "settle_timeout", .type = ParamType::Int, .default_value = 0, .min_value = 0},
    {.name = "proxy_port", .type = ParamType::Int, .default_value = 8007, .min_value = 0},
    {.name = "proxy_host", .type = ParamType::Str, .default_value = "127.0.0.1"},
};

class Health {
public:
    explicit Health(Module& module) : m_(module) {}

    json run() {
        const auto started = Clock::now();
        json summary;
        summary["settle"] = settle();
        summary["checked_at"] = utc_now_iso();
        summary["services"] = services();
        summary["proxy"] = proxy();
        summary["boot"] = boot();
        summary["datastores"] = datastores();
        summary["pbs_version"] = versions();
        summary["tasks"] = tasks();
        summary["system"] = system();
        summary["healthy"] = problems_.empty();
        summary["problems"] = problems_;

        json result{{"changed", false},
                    {"health_summary", summary},
                    {"services", summary["services"]},
                    {"proxy", summary["proxy"]},
                    {"settle", summary["settle"]},
                    {"datastores", summary["datastores"]},
                    {"pbs_version", summary["pbs_version"]},
                    {"versions", versions_},
                    {"tasks", tasks_},
                    {"task_counts", summary["tasks"]["counts"]},
                    {"kernel_release", summary["system"]["kernel_release"]},
                    {"root_free_gb", summary["system"]["root_free_gb"]},
                    {"reboot_required", summary["system"]["reboot_required"]},
                    {"uptime_s", summary["system"]["uptime_s"]},
                    {"boot_id", summary["boot"]["boot_id"]},
                    {"duration_s", std::chrono::duration<double>(Clock::now() - started).count()}};
        if (!problems_.empty()) {
            throw ModuleFailure(fmt::format("PBS is not healthy: {}", join(problems_, "; ")), result);
        }
        result["msg"] = fmt::format("PBS healthy: {} unit(s) active and enabled{}, {} datastore(s) available",
                                    summary["services"].size(),
                                    probe_ ? fmt::format(", port {} answers ({})", probe_->port, to_string(probe_->answer)) : "",
                                    available_stores_);
        return result;
    }

private:
    // systemctl show for the configured units; an error text instead when it cannot be read.
    void read_units() {
        units_.clear();
        units_error_.clear();
        const auto names = m_.list("services");
        if (names.empty()) return;
        std::vector<std::string> argv{"systemctl", "show", "-p", kUnitProperties, "--"};
        argv.insert(argv.end(), names.begin(), names.end());
        const auto r = run_process(argv, timeout());
        try {
            if (r.rc != 0) throw UnitStateError(failure("systemctl show", r));
            units_ = parse_unit_states(names, r.out);
        } catch (const UnitStateError& e) {
            units_error_ = e.what();
        }
    }

    // Health is judged once the units have settled (none activating, deactivating, reloading or waiting for a
    // restart) and, when they all look healthy, the proxy answers on its port, or once settle_timeout has passed.
    json settle() {
        const auto start = Clock::now();
        const auto limit = std::chrono::seconds(m_.integer("settle_timeout"));
        int polls = 0;
        bool settled = false;
        std::vector<std::string> waited_for;
        while (true) {
            ++polls;
            read_units();
            if (m_.integer("proxy_port") > 0) probe_ = probe_port();
            std::vector<std::string> pending;
            bool all_healthy = units_error_.empty();
            for (const auto& u : units_) {
                if (u.settling()) pending.push_back(fmt::format("{} {}/{}", u.id, u.active_state, u.sub_state));
                all_healthy = all_healthy && u.healthy();
            }
            if (pending.empty() && all_healthy && probe_ && !probe_->answered()) {
                pending.push_back(fmt::format("port {}: {}", probe_->port, probe_->detail));
            }
            for (const auto& p : pending) {
                if (std::find(waited_for.begin(), waited_for.end(), p) == waited_for.end()) waited_for.push_back(p);
            }
            settled = pending.empty();
            if (settled || Clock::now() - start >= limit) break;
            std::this_thread::sleep_for(std::min<Clock::duration>(std::chrono::seconds(1), limit - (Clock::now() - start)));
        }
        return {{"settled", settled},
                {"waited_s", std::chrono::duration<double>(Clock::now() - start).count()},
                {"timeout_s", m_.integer("settle_timeout")},
                {"polls", polls},
                {"waited_for", waited_for}};
    }

    PortProbe probe_port() const {
        return probe_tls_port(m_.str("proxy_host"), static_cast<int>(m_.integer("proxy_port")), std::chrono::seconds(5));
    }

    json services() {
        json out = json::array();
        if (!units_error_.empty()) {
            problems_.push_back(fmt::format("cannot read the state of {}: {}", join(m_.list("services"), ", "), units_error_));
            return out;
        }
        for (const auto& unit : units_) {
            out.push_back(unit.to_json());
            if (!unit.healthy()) {
                problems_.push_back(fmt::format("unit {} {} (ActiveState={}, SubState={}, UnitFileState={})",
                                                unit.id, unit.problem(), unit.active_state, unit.sub_state,
                                                unit.unit_file_state.empty() ? "-" : unit.unit_file_state));
            }
        }
        return out;
    }

    // The API really answers: a TLS handshake (or an HTTP answer) on the proxy's port, not just a unit `active`.
    json proxy() {
        if (!probe_) return nullptr;
        if (!probe_->answered()) {
            std::string units;
            for (const auto& u : units_) {
                if (u.id.find("proxy") != std::string::npos) units += fmt::format(", although {} is {}/{}", u.id, u.active_state, u.sub_state);
            }
            problems_.push_back(fmt::format("nothing answers on port {} of {} (no TLS handshake, no HTTP answer){}: {}",
                                            probe_->port, probe_->host, units, probe_->detail));
        }
        return probe_->to_json();
    }

    json boot() {
        json b{{"boot_id", nullptr}, {"expected_not", nullptr}, {"new_boot", nullptr}};
        std::string boot_id;
        try {
            boot_id = read_boot_id(m_.str("proc_path"));
            b["boot_id"] = boot_id;
        } catch (const std::exception& e) {
            m_.warn(fmt::format("cannot read boot id: {}", e.what()));
        }
        const auto& params = m_.params();
        const auto previous = params.contains("expect_boot_id_not") ? params.at("expect_boot_id_not") : json(nullptr);
        if (previous.is_string()) {
            const auto old = trim(previous.get<std::string>());
            b["expected_not"] = old;
            if (boot_id.empty()) {
                problems_.push_back("boot id unreadable: cannot prove the host rebooted");
            } else {
                b["new_boot"] = boot_id != old;
                if (boot_id == old) {
                    problems_.push_back(fmt::format("boot id is still {}: the host did not go through a reboot", old));
                }
            }
        }
        return b;
    }

    json datastores() {
        json out = json::array();
        if (!m_.boolean("check_datastores")) return out;
        const auto r = run_process({m_.str("pbm_path"), "datastore", "list", "--output-format", "json"}, timeout());
        try {
            if (r.rc != 0) throw DatastoreListError(failure("datastore list", r));
            for (const auto& store : parse_datastore_list(r.out)) {
                const auto s = probe_datastore(store);
                out.push_back(s.to_json());
                if (s.available()) ++available_stores_;
                if (!s.ok()) problems_.push_back(fmt::format("datastore {} unavailable: {}", store.name, s.problem()));
                else if (!s.available()) {
                    m_.warn(fmt::format("removable datastore {} is not mounted: {}", store.name, s.problem()));
                }
                if (s.maintenance) {
                    m_.warn(fmt::format("datastore {} is in maintenance mode {}{}", store.name, s.maintenance->type,
                                        s.maintenance->message ? " (" + *s.maintenance->message + ")" : ""));
                }
            }
        } catch (const DatastoreListError& e) {
            problems_.push_back(fmt::format("cannot list datastores: {}", e.what()));
        }
        return out;
    }

    json versions() {
        json v{{"installed", nullptr}, {"running", nullptr}, {"candidate", nullptr}};
        const auto package = m_.str("pbs_package");
        const auto dq = run_process({"dpkg-query", "-W", std::string("-f=") + kDpkgQueryFormat, package}, timeout());
        try {
            const auto state = parse_dpkg_state(dq.rc == 0 ? dq.out : "");
            if (state.contains(package)) v["installed"] = state.at(package).version;
        } catch (const DpkgStateError&) {
        }
        if (v["installed"].is_null()) m_.warn(fmt::format("{} is not installed according to dpkg", package));
        const auto r = run_process({m_.str("pbm_path"), "versions", "--output-format", "json"}, timeout());
        try {
            if (r.rc != 0) throw PbsVersionsError(failure("versions", r));
            const auto list = parse_pbs_versions(r.out);
            for (const auto& p : list) {
                versions_.push_back(p.to_json());
                if (p.package == package) v["candidate"] = p.version;
            }
            if (const auto running = running_pbs_version(list)) v["running"] = *running;
        } catch (const PbsVersionsError& e) {
            m_.warn(fmt::format("cannot read PBS versions: {}", e.what()));  // reported, not a health failure
        }
        return v;
    }

    json tasks() {
        json counts{{"ok", 0}, {"warnings", 0}, {"error", 0}, {"running", 0}};
        const auto limit = m_.integer("task_limit");
        const auto r = run_process({m_.str("pbm_path"), "task", "list", "--all", "--limit", std::to_string(limit),
                                    "--output-format", "json"},
                                   timeout());
        json t{{"limit", limit}, {"counts", counts}, {"error", nullptr}};
        try {
            if (r.rc != 0) throw TaskListError(failure("task list", r));
            auto list = parse_task_list_json(r.out);
            std::stable_sort(list.begin(), list.end(), [](const auto& a, const auto& b) { return a.starttime > b.starttime; });
            if (list.size() > static_cast<std::size_t>(limit)) list.resize(static_cast<std::size_t>(limit));
            for (const auto& task : list) {
                json j = task.to_json();
                const auto outcome = to_string(task_outcome(task));
                j["outcome"] = outcome;
                tasks_.push_back(j);
                counts[outcome] = counts[outcome].get<int>() + 1;
            }
            t["counts"] = counts;
            t["listed"] = tasks_.size();
        } catch (const TaskListError& e) {
            t["error"] = e.what();
            m_.warn(fmt::format("cannot list recent PBS tasks: {}", e.what()));  // visibility only
        }
        return t;
    }

    json system() {
        json s{{"kernel_release", kernel_release()}};
        const auto uptime = read_uptime(m_.str("proc_path"));
        s["uptime_s"] = uptime ? json(*uptime) : json(nullptr);
        try {
            const auto space = probe_disk_space(m_.str("root_path"));
            s["root_free_gb"] = space.avail_gib;
            s["root_free_bytes"] = space.avail_bytes;
        } catch (const std::exception& e) {
            s["root_free_gb"] = nullptr;
            m_.warn(fmt::format("cannot read free space of {}: {}", m_.str("root_path"), e.what()));
        }
        const auto flag = read_reboot_flag(m_.str("reboot_required_file"));
        s["reboot_required"] = flag.required;
        s["reboot_required_pkgs"] = flag.pkgs;
        const auto kernel = kernel_status(kernel_release(), list_directory(m_.str("boot_path")));
        const auto pending = kernel.pending();
        s["kernel_pending"] = pending ? json(*pending) : json(nullptr);
        s["newest_installed_kernel"] = kernel.newest ? json(*kernel.newest) : json(nullptr);
        return s;
    }

    RunOptions timeout() const {
        RunOptions options;
        options.timeout = std::chrono::seconds(m_.integer("command_timeout"));
        return options;
    }

    std::string failure(const char* what, const ProcessResult& r) const {
        if (r.timed_out) return fmt::format("{} timed out after {} s", what, m_.integer("command_timeout"));
        return fmt::format("{} rc {}: {}", what, r.rc, tail_lines(trim(r.err + r.error), 3));
    }

    Module& m_;
    std::vector<UnitState> units_;
    std::string units_error_;
    std::optional<PortProbe> probe_;
    std::vector<std::string> problems_;
    json versions_ = json::array();
    json tasks_ = json::array();
    int available_stores_ = 0;
};

json run_health(Module& m) { return Health(m).run(); }

}  // namespace

int main(int argc, char** argv) { return pbs_patch::run_module(argc, argv, kSpec, run_health); }
