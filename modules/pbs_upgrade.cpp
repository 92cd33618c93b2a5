// pbs_upgrade: the spec's bounded package upgrade on a PBS host. What changed is read from dpkg before and
// after, never from apt's progress output; a timed-out dist-upgrade is a warning unless dpkg is left broken.
#include "pbs_patch/apt_plan.hpp"
#include "pbs_patch/dpkg_audit.hpp"
#include "pbs_patch/dpkg_state.hpp"
#include "pbs_patch/kernels.hpp"
#include "pbs_patch/module.hpp"
#include "pbs_patch/process.hpp"
#include "pbs_patch/reboot_flag.hpp"
#include "pbs_patch/system_info.hpp"
#include "pbs_patch/text.hpp"

#include <fmt/format.h>

#include <chrono>
#include <optional>

namespace {

using nlohmann::json;
using namespace pbs_patch;
using Clock = std::chrono::steady_clock;

const ParamSpecs kSpec = {
    {.name = "fix_broken", .type = ParamType::Bool, .default_value = true},
    {.name = "update_cache", .type = ParamType::Bool, .default_value = true},
    {.name = "upgrade_timeout", .type = ParamType::Int, .default_value = 3600, .min_value = 1},
    {.name = "update_timeout", .type = ParamType::Int, .default_value = 600, .min_value = 1},
    {.name = "fix_broken_timeout", .type = ParamType::Int, .default_value = 900, .min_value = 1},
    {.name = "dpkg_configure_timeout", .type = ParamType::Int, .default_value = 900, .min_value = 1},
    {.name = "command_timeout", .type = ParamType::Int, .default_value = 120, .min_value = 1},
    {.name = "reboot_required_file", .type = ParamType::Path, .default_value = "/var/run/reboot-required"},
    {.name = "boot_path", .type = ParamType::Path, .default_value = "/boot"},
    {.name = "output_lines", .type = ParamType::Int, .default_value = 40, .min_value = 0},
};

// On every apt-get that may configure packages: keep local config files, never ask. No pty: with one, apt
// runs dpkg in a new session (setsid), outside the process group the timeout kills, and a "timed out"
// dpkg would go on holding the lock (seen in the sandbox test).
const std::vector<std::string> kConfOptions = {"-o", "Dpkg::Options::=--force-confdef", "-o",
                                               "Dpkg::Options::=--force-confold", "-o", "Dpkg::Use-Pty=0"};

std::vector<std::string> apt_get(std::vector<std::string> head, const std::vector<std::string>& tail) {
    head.insert(head.end(), tail.begin(), tail.end());
    return head;
}

class Upgrade {
public:
    explicit Upgrade(Module& module) : m_(module) {}

    json run() {
        const auto started = Clock::now();
        before_ = snapshot("before");
        if (m_.check_mode()) return simulate(started);

        if (m_.boolean("fix_broken")) {
            const auto r = step("fix_broken", apt_get({"apt-get", "-y"}, kConfOptions), {"--fix-broken", "install"},
                                "fix_broken_timeout");
            if (r.rc != 0) fail(fmt::format("apt-get --fix-broken install {}", describe_failure(r, "fix_broken_timeout")), r);
        }
        if (m_.boolean("update_cache")) {
            const auto r = step("update_cache", {"apt-get", "update"}, {}, "update_timeout");
            if (r.rc != 0) fail(fmt::format("apt-get update (cache refresh) {}", describe_failure(r, "update_timeout")), r);
        }
        const auto r = step("dist_upgrade", apt_get({"apt-get", "-y"}, kConfOptions), {"dist-upgrade"}, "upgrade_timeout");
        upgrade_ = r;
        held_back_ = parse_held_back(r.out);
        if (r.timed_out) {
            m_.warn(fmt::format("apt-get dist-upgrade timed out after {} s and was stopped (rc 124); dpkg state checked",
                                m_.integer("upgrade_timeout")));
            settle_dpkg_after_timeout();
        } else if (r.rc != 0) {
            fail(fmt::format("apt-get dist-upgrade {}", describe_failure(r, "upgrade_timeout")), r);
        }
        return finish(started, diff_dpkg_states(before_, snapshot("after")));
    }

private:
    json simulate(Clock::time_point started) {
        m_.warn("check mode: apt cache not refreshed and --fix-broken not run; the simulation uses the current package "
                "lists");
        const auto r = step("simulate", apt_get({"apt-get", "-s"}, kConfOptions), {"dist-upgrade"}, "command_timeout");
        upgrade_ = r;
        if (r.rc != 0) fail(fmt::format("apt-get -s dist-upgrade {}", describe_failure(r, "command_timeout")), r);
        const auto plan = parse_apt_simulation(r.out);
        held_back_ = plan.held_back;
        return finish(started, plan.changes);
    }

    // After a timeout the group is dead; dpkg may be mid-way. One bounded repair, then refuse to go on
    // (the role would reboot next) if dpkg is still inconsistent.
    void settle_dpkg_after_timeout() {
        auto audit = audit_dpkg();
        if (audit.empty()) return;
        steps_["dpkg_audit"] = json{{"findings", tail_lines(audit, 20)}};
        m_.warn("dpkg was left with unfinished work by the timed-out upgrade: running dpkg --configure -a once");
        const auto r = configure_pending_packages(std::chrono::seconds(m_.integer("dpkg_configure_timeout")));
        record_step("dpkg_configure", r);
        audit = audit_dpkg();
        if (!audit.empty()) {
            fail(fmt::format("dpkg is inconsistent after the timed-out dist-upgrade and one dpkg --configure -a "
                             "(rc {}{}): {} - do not reboot this host before repairing it",
                             r.rc, r.timed_out ? ", timed out" : "", tail_lines(audit, 5)),
                 r);
        }
    }

    // dpkg --audit's findings, empty when consistent. Not being able to ask is a failure too.
    std::string audit_dpkg() {
        const auto audit = pbs_patch::audit_dpkg(std::chrono::seconds(m_.integer("command_timeout")));
        if (!audit.readable) fail(audit.problem, ProcessResult{});
        return audit.findings;
    }

    DpkgState snapshot(const char* when) {
        const auto r = run_process({"dpkg-query", "-W", std::string("-f=") + kDpkgQueryFormat}, timeout_of("command_timeout"));
        if (r.rc != 0) {
            fail(fmt::format("cannot read the installed packages ({}): dpkg-query {}", when,
                             describe_failure(r, "command_timeout")),
                 r);
        }
        try {
            return parse_dpkg_state(r.out);
        } catch (const DpkgStateError& e) {
            fail(fmt::format("cannot read the installed packages ({}): {}", when, e.what()), r);
        }
    }

    ProcessResult step(const char* name, std::vector<std::string> argv, const std::vector<std::string>& extra,
                       const char* timeout_param) {
        argv.insert(argv.end(), extra.begin(), extra.end());
        auto r = run_process(argv, timeout_of(timeout_param));
        record_step(name, r);
        return r;
    }

    void record_step(const char* name, const ProcessResult& r) {
        steps_[name] = json{{"cmd", r.argv}, {"rc", r.rc}, {"timed_out", r.timed_out}, {"duration_s", r.duration_s}};
    }

    RunOptions timeout_of(const char* param) const {
        RunOptions options;
        options.timeout = std::chrono::seconds(m_.integer(param));
        return options;
    }

    std::string describe_failure(const ProcessResult& r, const char* timeout_param) const {
        if (r.timed_out) return fmt::format("timed out after {} s", m_.integer(timeout_param));
        const auto why = tail_lines(trim(r.err.empty() ? r.out + r.error : r.err + r.error), 5);
        return fmt::format("failed (rc {}): {}", r.rc, why.empty() ? "no output" : why);
    }

    json finish(Clock::time_point started, const std::vector<PackageChange>& changes) {
        const auto lines = static_cast<std::size_t>(m_.integer("output_lines"));
        const auto flag = read_reboot_flag(m_.str("reboot_required_file"));
        const auto kernel = kernel_status(kernel_release(), list_directory(m_.str("boot_path")));
        const auto pending = kernel.pending();
        if (!pending) m_.warn(fmt::format("no vmlinuz-* in {}: pending kernel unknown", m_.str("boot_path")));
        json result{{"changed", !changes.empty()},
                    {"packages", to_json(changes)},
                    {"held_back", held_back_},
                    {"timed_out", upgrade_ ? upgrade_->timed_out : false},
                    {"rc", upgrade_ ? upgrade_->rc : 0},
                    {"duration_s", std::chrono::duration<double>(Clock::now() - started).count()},
                    {"reboot_required", flag.required},
                    {"reboot_required_pkgs", flag.pkgs},
                    {"kernel_pending", pending ? json(*pending) : json(nullptr)},
                    {"kernel", kernel.to_json()},
                    {"steps", steps_},
                    {"stdout_tail", upgrade_ ? tail_lines(upgrade_->out, lines) : ""},
                    {"stderr_tail", upgrade_ ? tail_lines(upgrade_->err, lines) : ""},
                    {"check_mode", m_.check_mode()}};
        if (m_.diff_mode()) result["diff"] = package_diff(changes);
        if (!held_back_.empty()) {
            m_.warn(fmt::format("{} package(s) held back: {}", held_back_.size(), join(held_back_, " ")));
        }
        const std::string verb = m_.check_mode() ? "would change" : "changed";
        std::string msg = changes.empty() ? std::string(m_.check_mode() ? "no package would change" : "no package changed")
                                          : fmt::format("{} {} package(s)", verb, changes.size());
        if (!held_back_.empty()) msg += fmt::format(", {} held back", held_back_.size());
        if (result["timed_out"] == true) msg += "; dist-upgrade timed out (dpkg consistent)";
        result["msg"] = msg;
        return result;
    }

    // Fails with what is known so far, including what already changed (changed stays truthful).
    [[noreturn]] void fail(const std::string& msg, const ProcessResult& r) {
        json extra{{"steps", steps_}, {"rc", r.rc}, {"timed_out", upgrade_ ? upgrade_->timed_out : r.timed_out},
                   {"stdout_tail", tail_lines(r.out, 40)}, {"stderr_tail", tail_lines(r.err, 40)},
                   {"held_back", held_back_}, {"packages", json::array()}, {"changed", false}};
        if (!before_.empty() && !m_.check_mode() && !in_failure_) {
            in_failure_ = true;
            try {
                const auto now = run_process({"dpkg-query", "-W", std::string("-f=") + kDpkgQueryFormat},
                                             timeout_of("command_timeout"));
                if (now.rc == 0) {
                    const auto changes = diff_dpkg_states(before_, parse_dpkg_state(now.out));
                    extra["packages"] = to_json(changes);
                    extra["changed"] = !changes.empty();
                }
            } catch (const std::exception&) {
                // the failure message matters more than the package list
            }
        }
        throw ModuleFailure(msg, extra);
    }

    Module& m_;
    DpkgState before_;
    std::optional<ProcessResult> upgrade_;
    std::vector<std::string> held_back_;
    json steps_ = json::object();
    bool in_failure_ = false;
};

json run_upgrade(Module& m) { return Upgrade(m).run(); }

}  // namespace

int main(int argc, char** argv) { return pbs_patch::run_module(argc, argv, kSpec, run_upgrade); }
