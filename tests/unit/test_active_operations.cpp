// Active operations files (pbs-datastore/src/task_tracking.rs: serde_json of Vec<TaskOperations>, compact) and
// the process check behind them. The /proc/<pid>/stat samples were recorded on this Debian 12 host (a comm with
// spaces and parentheses; a zombie).
#include "fixtures.hpp"
#include "pbs_patch/active_operations.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <unistd.h>

using namespace pbs_patch;
namespace fs = std::filesystem;

TEST_CASE("active operations: entries of live processes count, stale ones do not") {
    const auto entries = parse_active_operations(fixture("active_operations_store1.json"));
    REQUIRE(entries.size() == 3);
    CHECK(entries[0].pid == 1432);
    CHECK(entries[0].starttime == 2915);
    CHECK(entries[0].operations.write == 1);
    // 1432 runs with that start time; 20117's pid was reused by another process; 977 is gone
    const auto live = [](std::uint32_t pid) -> std::optional<std::uint64_t> {
        if (pid == 1432) return 2915;
        if (pid == 20117) return 990001;
        return std::nullopt;
    };
    const auto sum = sum_live_operations(entries, live);
    CHECK(sum.read == 0);
    CHECK(sum.write == 1);
    CHECK_FALSE(sum.idle());
    CHECK(sum_live_operations(entries, [](std::uint32_t) { return std::nullopt; }).idle());
    CHECK(parse_active_operations("[]").empty());
}

TEST_CASE("active operations: malformed or out-of-range input is an error, never zero") {
    CHECK_THROWS_AS(parse_active_operations(""), ActiveOperationsError);
    CHECK_THROWS_AS(parse_active_operations("{}"), ActiveOperationsError);
    CHECK_THROWS_AS(parse_active_operations(R"([{"pid":1,"starttime":2}])"), ActiveOperationsError);
    CHECK_THROWS_AS(parse_active_operations(R"([{"pid":4294967296,"starttime":2,"active_operations":{"read":0,"write":0}}])"),
                    ActiveOperationsError);
    CHECK_THROWS_AS(parse_active_operations(R"([{"pid":-1,"starttime":2,"active_operations":{"read":0,"write":0}}])"),
                    ActiveOperationsError);
    CHECK_THROWS_AS(parse_active_operations(R"([{"pid":1,"starttime":2,"active_operations":{"read":9223372036854775808,"write":0}}])"),
                    ActiveOperationsError);
    CHECK_THROWS_AS(parse_active_operations(R"([{"pid":1,"starttime":1e3,"active_operations":{"read":0,"write":0}}])"),
                    ActiveOperationsError);
    CHECK_THROWS_AS(parse_active_operations(R"([{"pid":"1","starttime":2,"active_operations":{"read":0,"write":0}}])"),
                    ActiveOperationsError);
    // counts can be negative transiently in PBS (i64): accepted as they are
    CHECK(parse_active_operations(R"([{"pid":1,"starttime":2,"active_operations":{"read":-1,"write":0}}])")[0].operations.read == -1);
}

TEST_CASE("proc stat: start time, odd comm, zombie") {
    CHECK(parse_proc_stat_starttime(fixture("proc_stat_odd_comm.txt")) == 380999);
    CHECK_FALSE(parse_proc_stat_starttime(fixture("proc_stat_zombie.txt")));
    CHECK_FALSE(parse_proc_stat_starttime("garbage"));
    CHECK_FALSE(parse_proc_stat_starttime("1 (x) S 1 2 3"));
    const auto mine = process_starttime("/proc", static_cast<std::uint32_t>(::getpid()));
    CHECK(mine.has_value());
    CHECK_FALSE(process_starttime("/proc", 4194305));  // above pid_max
}

TEST_CASE("active operations: reading a store's file") {
    const fs::path dir = fs::temp_directory_path() / "pbs_patch_active_ops_test";
    fs::remove_all(dir);
    fs::create_directories(dir);
    CHECK(read_active_operations(dir.string(), "store1", "/proc").idle());  // no file: none
    const auto pid = static_cast<std::uint32_t>(::getpid());
    const auto start = process_starttime("/proc", pid).value();
    std::ofstream(dir / "store1") << R"([{"pid":)" << pid << R"(,"starttime":)" << start
                                  << R"(,"active_operations":{"read":1,"write":2}}])";
    const auto ops = read_active_operations(dir.string(), "store1", "/proc");
    CHECK(ops.read == 1);
    CHECK(ops.write == 2);
    std::ofstream(dir / "store2") << "not json";
    CHECK_THROWS_AS(read_active_operations(dir.string(), "store2", "/proc"), ActiveOperationsError);
    fs::remove_all(dir);
}
