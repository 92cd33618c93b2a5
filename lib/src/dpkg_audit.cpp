// dpkg --audit verdicts and the dpkg --configure -a repair.
#include "pbs_patch/dpkg_audit.hpp"

#include "pbs_patch/text.hpp"

#include <fmt/format.h>

namespace pbs_patch {

DpkgAudit interpret_dpkg_audit(const ProcessResult& run) {
    DpkgAudit audit;
    audit.findings = trim(run.out);
    if (run.timed_out || !run.started || (run.rc != 0 && run.rc != 1) || (run.rc == 1 && audit.findings.empty())) {
        audit.readable = false;
        audit.problem = fmt::format("cannot read dpkg state: dpkg --audit {}: {}",
                                    run.timed_out ? std::string("timed out") : fmt::format("rc {}", run.rc),
                                    tail_lines(trim(run.err + run.error), 3));
    }
    return audit;
}

DpkgAudit audit_dpkg(std::chrono::seconds timeout) {
    RunOptions options;
    options.timeout = timeout;
    return interpret_dpkg_audit(run_process({"dpkg", "--audit"}, options));
}

ProcessResult configure_pending_packages(std::chrono::seconds timeout) {
    RunOptions options;
    options.timeout = timeout;
    return run_process({"dpkg", "--force-confdef", "--force-confold", "--configure", "-a"}, options);
}

}  // namespace pbs_patch
