// dpkg's own consistency check and its one repair, shared by the gate (before the upgrade) and the
// upgrade (after a timeout): a half-configured PBS must never be rebooted.
#pragma once

#include "pbs_patch/process.hpp"

#include <chrono>
#include <string>

namespace pbs_patch {

struct DpkgAudit {
    bool readable = true;   // false: dpkg could not be asked (timeout, error): never "consistent"
    std::string findings;   // what dpkg --audit printed; empty when consistent
    std::string problem;    // why it was not readable
    bool consistent() const { return readable && findings.empty(); }
};

// Pure: the verdict from a finished `dpkg --audit` run. dpkg prints the broken packages; newer
// releases also exit 1 when it finds any.
DpkgAudit interpret_dpkg_audit(const ProcessResult& run);

DpkgAudit audit_dpkg(std::chrono::seconds timeout);

// `dpkg --configure -a`, keeping local config files and never asking.
ProcessResult configure_pending_packages(std::chrono::seconds timeout);

}  // namespace pbs_patch
