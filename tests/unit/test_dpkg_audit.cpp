// dpkg --audit verdicts: consistent, work to do, and "could not ask" (never consistent).
#include "pbs_patch/dpkg_audit.hpp"

#include <doctest/doctest.h>

using namespace pbs_patch;

namespace {
ProcessResult finished(int rc, std::string out, std::string err = {}) {
    ProcessResult r;
    r.started = true;
    r.rc = rc;
    r.out = std::move(out);
    r.err = std::move(err);
    return r;
}
}  // namespace

TEST_CASE("dpkg --audit: silent means consistent") {
    const auto a = interpret_dpkg_audit(finished(0, ""));
    CHECK(a.readable);
    CHECK(a.consistent());
}

TEST_CASE("dpkg --audit: findings, with exit 0 (older dpkg) or 1 (newer)") {
    const char* text =
        "The following packages are only half configured, probably due to problems\n"
        "configuring them the first time.  The configuration should be retried using\n"
        "dpkg --configure <package> or the configure menu option in dselect:\n"
        " pbs-lab-flaky        a package whose postinst failed once\n";
    for (int rc : {0, 1}) {
        const auto a = interpret_dpkg_audit(finished(rc, text));
        CHECK(a.readable);
        CHECK_FALSE(a.consistent());
        CHECK(a.findings.find("pbs-lab-flaky") != std::string::npos);
    }
}

TEST_CASE("dpkg --audit: errors and timeouts are never 'consistent'") {
    auto a = interpret_dpkg_audit(finished(2, "", "dpkg: error: cannot access archive"));
    CHECK_FALSE(a.readable);
    CHECK_FALSE(a.consistent());
    CHECK(a.problem.find("cannot access archive") != std::string::npos);
    a = interpret_dpkg_audit(finished(1, ""));
    CHECK_FALSE(a.consistent());
    ProcessResult timed_out = finished(124, "");
    timed_out.timed_out = true;
    a = interpret_dpkg_audit(timed_out);
    CHECK_FALSE(a.consistent());
    CHECK(a.problem.find("timed out") != std::string::npos);
    ProcessResult missing;
    missing.rc = 127;
    missing.error = "dpkg: command not found";
    a = interpret_dpkg_audit(missing);
    CHECK_FALSE(a.consistent());
    CHECK(a.problem.find("command not found") != std::string::npos);
}
