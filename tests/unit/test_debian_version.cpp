// Debian version ordering, pinned against dpkg's own verdicts.
#include "pbs_patch/debian_version.hpp"

#include <doctest/doctest.h>

#include <cstdlib>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

using namespace pbs_patch;

namespace {

// (a, b, expected sign of compare(a, b)); each pair also checked with the arguments swapped.
const std::vector<std::tuple<std::string, std::string, int>> kSamples = {
    {"1.0", "1.0", 0},
    {"1.0", "1.1", -1},
    {"1.0-1", "1.0-2", -1},
    {"1.0~rc1-1", "1.0-1", -1},
    {"1:2.0~rc1-1", "1:2.0-1", -1},
    {"1:0.1", "2.0", 1},
    {"2.0", "2.0.0", -1},
    {"1.0a", "1.0", 1},
    {"1.0+deb12u1", "1.0", 1},
    {"12.4+deb12u11", "12.4+deb12u15", -1},
    {"252.38-1~deb12u1", "252.38-1", -1},
    {"5.2.15-2+b8", "5.2.15-2+b13", -1},
    {"3.0.19-1~deb12u2", "3.0.19-1", -1},
    {"2025b-0+deb12u2", "2025b-0+deb12u1", 1},
    {"6.1.0-28-amd64", "6.1.0-30-amd64", -1},
    {"6.8.12-4-pve", "6.8.12-10-pve", -1},
    {"6.8.12-4-pve", "6.5.13-6-pve", 1},
    {"1.0~", "1.0", -1},
    {"1.0~~", "1.0~", -1},
    {"007", "7", 0},
    {"1.0-0", "1.0", 0},
};

int sign(int v) { return (v > 0) - (v < 0); }

}  // namespace

TEST_CASE("Debian versions: epoch, upstream and revision split") {
    const auto v = parse_debian_version("1:2.0~rc1-1+deb12u1");
    CHECK(v.epoch == 1);
    CHECK(v.upstream == "2.0~rc1");
    CHECK(v.revision == "1+deb12u1");
    const auto w = parse_debian_version("6.8.12-4-pve");
    CHECK(w.epoch == 0);
    CHECK(w.upstream == "6.8.12-4");
    CHECK(w.revision == "pve");
    CHECK(parse_debian_version("2.0").revision.empty());
}

TEST_CASE("Debian versions: the samples order as expected") {
    for (const auto& [a, b, expected] : kSamples) {
        CAPTURE(a);
        CAPTURE(b);
        CHECK(sign(compare_debian_versions(a, b)) == expected);
        CHECK(sign(compare_debian_versions(b, a)) == -expected);
    }
}

TEST_CASE("Debian versions: dpkg --compare-versions agrees on every sample" * doctest::skip(std::system("command -v dpkg >/dev/null 2>&1") != 0)) {
    for (const auto& [a, b, expected] : kSamples) {
        CAPTURE(a);
        CAPTURE(b);
        const std::string lt = "dpkg --compare-versions '" + a + "' lt '" + b + "'";
        const std::string eq = "dpkg --compare-versions '" + a + "' eq '" + b + "'";
        const int dpkg_sign = std::system(lt.c_str()) == 0 ? -1 : (std::system(eq.c_str()) == 0 ? 0 : 1);
        CHECK(dpkg_sign == expected);
    }
}
