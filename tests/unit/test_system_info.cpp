// Probes and their parsers against the real host.
#include "fixtures.hpp"
#include "pbs_patch/process.hpp"
#include "pbs_patch/system_info.hpp"
#include "pbs_patch/text.hpp"

#include <doctest/doctest.h>

using namespace pbs_patch;

TEST_CASE("df rounds up to whole GiB") {
    CHECK(df_ceil_gib(0) == 0);
    CHECK(df_ceil_gib(1) == 1);
    CHECK(df_ceil_gib(kGiB) == 1);
    CHECK(df_ceil_gib(kGiB + 1) == 2);
    CHECK(df_ceil_gib(5 * kGiB - 1) == 5);
}

TEST_CASE("root free space matches df -BG --output=avail /") {
    const auto df = run_process({"df", "-BG", "--output=avail", "/"});
    REQUIRE(df.rc == 0);
    const auto lines = split_lines(df.out);
    REQUIRE(lines.size() >= 2);
    std::string value = trim(lines[1]);
    REQUIRE(value.back() == 'G');
    value.pop_back();
    const auto space = probe_disk_space("/");
    // Allow one GiB of drift: the filesystem is live.
    CHECK(std::abs(space.avail_gib - std::stoll(value)) <= 1);
    CHECK_THROWS(probe_disk_space("/nonexistent/path"));
}

TEST_CASE("uptime parsing") {
    CHECK(parse_uptime(fixture("proc_uptime.txt")).has_value());
    CHECK(parse_uptime("12345.67 23456.78\n") == doctest::Approx(12345.67));
    CHECK_FALSE(parse_uptime(""));
    CHECK_FALSE(parse_uptime("abc 1"));
    CHECK_FALSE(parse_uptime("-1 2"));
}

TEST_CASE("boot id: only a UUID is a boot id") {
    CHECK(parse_boot_id("5b1f3e52-9a3c-4c1e-8f0e-2d7a1c6b9e10\n") == "5b1f3e52-9a3c-4c1e-8f0e-2d7a1c6b9e10");
    CHECK(parse_boot_id("5B1F3E52-9A3C-4C1E-8F0E-2D7A1C6B9E10") == "5b1f3e52-9a3c-4c1e-8f0e-2d7a1c6b9e10");
    // what a read can return while the host shuts down (ansible issue #83018) is not a new boot id
    CHECK_FALSE(parse_boot_id(""));
    CHECK_FALSE(parse_boot_id("cat: /proc/sys/kernel/random/boot_id: No such file or directory"));
    CHECK_FALSE(parse_boot_id("Connection to 127.0.0.1 closed by remote host."));
    CHECK_FALSE(parse_boot_id("5b1f3e52-9a3c-4c1e-8f0e-2d7a1c6b9e1"));
    CHECK_FALSE(parse_boot_id("5b1f3e52-9a3c-4c1e-8f0e-2d7a1c6b9e10x"));
    CHECK_FALSE(parse_boot_id("5b1f3e52_9a3c-4c1e-8f0e-2d7a1c6b9e10"));
    CHECK_FALSE(parse_boot_id("zb1f3e52-9a3c-4c1e-8f0e-2d7a1c6b9e10"));
}

TEST_CASE("boot id, kernel release, uptime from the live system") {
    const auto id = read_boot_id();
    CHECK(id.size() == 36);
    CHECK_FALSE(kernel_release().empty());
    CHECK(read_uptime().has_value());
    CHECK_THROWS(read_boot_id("/nonexistent"));
    CHECK(utc_now_iso().size() == 20);
    CHECK(utc_iso(0) == "1970-01-01T00:00:00Z");
    CHECK(utc_iso(1764235800) == "2025-11-27T09:30:00Z");
}
