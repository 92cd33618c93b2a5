// Task list parsing on recorded samples in the real PBS shapes.
#include "fixtures.hpp"
#include "pbs_patch/task_list.hpp"
#include "pbs_patch/text.hpp"

#include <doctest/doctest.h>

using namespace pbs_patch;

TEST_CASE("UPID: the example from proxmox-backup's sources") {
    const auto u = parse_upid("UPID:elsa:00004F37:0039E469:00000000:5CA78B83:garbage_collection::root@pam:");
    REQUIRE(u);
    CHECK(u->node == "elsa");
    CHECK(u->pid == 0x4F37);
    CHECK(u->pstart == 0x39E469);
    CHECK(u->task_id == 0);
    CHECK(u->starttime == 0x5CA78B83);
    CHECK(u->worker_type == "garbage_collection");
    CHECK(u->worker_id.empty());
    CHECK(u->authid == "root@pam");
}

TEST_CASE("UPID: escaped worker ids, 9-digit pstart, 16-digit task id, token authid") {
    const auto u = parse_upid("UPID:pbs:0000044F:1003E829F:0000000000000012:69281A18:backup:store1\\x3avm-100:backup@pbs!patch:");
    REQUIRE(u);
    CHECK(u->pstart == 0x1003E829FLL);
    CHECK(u->task_id == 0x12);
    CHECK(u->worker_id == "store1:vm/100");
    CHECK(u->authid == "backup@pbs!patch");
}

TEST_CASE("UPID: malformed text is refused") {
    CHECK_FALSE(parse_upid(""));
    CHECK_FALSE(parse_upid("UPID:pbs:0000044F:003E829F:00000012:69281A18:backup:id:root@pam"));  // no trailing ':'
    CHECK_FALSE(parse_upid("UPID:pbs:44F:003E829F:00000012:69281A18:backup:id:root@pam:"));      // short pid
    CHECK_FALSE(parse_upid("UPID:pbs:0000044G:003E829F:00000012:69281A18:backup:id:root@pam:"));  // not hex
    CHECK_FALSE(parse_upid("TASK:pbs:0000044F:003E829F:00000012:69281A18:backup:id:root@pam:"));
    CHECK_FALSE(parse_upid("UPID:pbs:0000044F:003E829F:00000012:69281A18::id:root@pam:"));  // no type
}

TEST_CASE("hex fields of a UPID: digits of either case, bounded length, nothing else") {
    CHECK(parse_hex("00004F37", 8, 8) == 0x4F37u);
    CHECK(parse_hex("0039e469", 8, 9) == 0x39E469u);
    CHECK(parse_hex("ffffffffffffffff", 1, 16) == 0xFFFFFFFFFFFFFFFFu);
    CHECK_FALSE(parse_hex("4F37", 8, 8));       // too short
    CHECK_FALSE(parse_hex("000004F37", 8, 8));  // too long
    CHECK_FALSE(parse_hex("0000-F37", 8, 8));
    CHECK_FALSE(parse_hex("0x004F37", 8, 8));
    CHECK_FALSE(parse_hex("", 0, 17));          // a bound that could overflow is refused
}

TEST_CASE("systemd unescaping of worker ids") {
    CHECK(systemd_unescape("store1\\x3avm-100") == "store1:vm/100");
    CHECK(systemd_unescape("store1\\x3av\\x2dd2f0a6e0") == "store1:v-d2f0a6e0");
    CHECK(systemd_unescape("plain") == "plain");
    CHECK(systemd_unescape("trailing\\x") == "trailing\\x");
}

TEST_CASE("task list JSON: one running backup (compact output)") {
    const auto tasks = parse_task_list_json(fixture("task_list_running.json"));
    REQUIRE(tasks.size() == 1);
    CHECK(tasks[0].running());
    CHECK(tasks[0].worker_type == "backup");
    CHECK(tasks[0].worker_id == "store1:vm/100");
    CHECK(tasks[0].user == "root@pam");
    CHECK(tasks[0].starttime == 1764235800);
    CHECK(task_outcome(tasks[0]) == TaskOutcome::Running);
    const auto j = tasks[0].to_json();
    CHECK_FALSE(j.contains("endtime"));
    CHECK_FALSE(j.contains("status"));
}

TEST_CASE("task list JSON --all (json-pretty): finished statuses and a null worker id") {
    const auto tasks = parse_task_list_json(fixture("task_list_all.json"));
    REQUIRE(tasks.size() == 5);
    CHECK(tasks[0].running());
    CHECK(task_outcome(tasks[1]) == TaskOutcome::Ok);
    CHECK(task_outcome(tasks[2]) == TaskOutcome::Warnings);
    CHECK(tasks[2].status == "WARNINGS: 2");
    CHECK(task_outcome(tasks[3]) == TaskOutcome::Error);
    CHECK(task_outcome(tasks[4]) == TaskOutcome::Error);  // "unknown" did not end well
    CHECK_FALSE(tasks[4].worker_id.has_value());
    CHECK(tasks[4].to_json()["worker_id"].is_null());
    for (const auto& t : tasks) CHECK(parse_upid(t.upid));
}

TEST_CASE("task list JSON: empty list means no tasks") {
    CHECK(parse_task_list_json(fixture("task_list_empty.json")).empty());
}

TEST_CASE("task list JSON: anything but an array of tasks is an error, never 'no tasks'") {
    CHECK_THROWS_AS(parse_task_list_json(""), TaskListError);
    CHECK_THROWS_AS(parse_task_list_json("Error: error trying to connect: Connection refused"), TaskListError);
    CHECK_THROWS_AS(parse_task_list_json("{}"), TaskListError);
    CHECK_THROWS_AS(parse_task_list_json("[1]"), TaskListError);
    CHECK_THROWS_AS(parse_task_list_json(R"([{"upid":"x"}])"), TaskListError);
    CHECK_THROWS_AS(parse_task_list_json(R"([{"upid":"x","starttime":"soon","worker_type":"backup","user":"root@pam"}])"),
                    TaskListError);
    // The API's envelope is accepted.
    CHECK(parse_task_list_json(R"({"data":[]})").empty());
}

TEST_CASE("tasks/active file: running and finished lines") {
    const auto tasks = parse_active_tasks(fixture("tasks_active.txt"));
    REQUIRE(tasks.size() == 4);
    CHECK_FALSE(tasks[0].running());
    CHECK(tasks[0].status == "OK");
    CHECK(tasks[0].endtime == 0x69280C6C);
    CHECK(tasks[1].status == "WARNINGS: 2");
    CHECK(tasks[1].worker_id == "store1:v-d2f0a6e0-3d3a");
    CHECK(tasks[2].running());
    CHECK(tasks[2].worker_type == "backup");
    CHECK(tasks[2].worker_id == "store1:vm/100");
    CHECK(tasks[2].starttime == 1764235800);
    CHECK(tasks[3].status == "unexpected error on datastore traversal: Permission denied (os error 13)");
    CHECK(task_outcome(tasks[3]) == TaskOutcome::Error);
}

TEST_CASE("tasks/active file: empty file, blank lines, garbage") {
    CHECK(parse_active_tasks("").empty());
    CHECK(parse_active_tasks("\n\n").empty());
    CHECK_THROWS_AS(parse_active_tasks("not a task\n"), TaskListError);
    CHECK_THROWS_AS(parse_active_tasks("UPID:elsa:00004F37:0039E469:00000000:5CA78B83:garbage_collection::root@pam: zz OK\n"),
                    TaskListError);
}

TEST_CASE("task list JSON: numbers out of range for their type are malformed output, never wrapped") {
    const std::string good =
        R"({"upid":"UPID:pbs:0000044F:00001A2B:00000000:6928A0D8:garbage_collection:store1:root@pam:",)"
        R"("node":"pbs","pid":1103,"pstart":6699,"starttime":1764335832,"worker_type":"garbage_collection",)"
        R"("worker_id":"store1","user":"root@pam"})";
    // Built with += : GCC 12 reports a false -Wrestrict on "[" + text + "]".
    auto array_of = [](const std::string& item_text) {
        std::string out = "[";
        out += item_text;
        out += "]";
        return out;
    };
    REQUIRE(parse_task_list_json(array_of(good)).size() == 1);
    struct Case {
        const char* key;
        const char* value;
        const char* words;
    };
    const Case cases[] = {
        {"starttime", "18446744073709551615", "out of range"},
        {"starttime", "1e300", "out of range"},
        {"starttime", "-1", "out of range"},
        {"starttime", "1764335832.5", "not an integer"},
        {"pid", "4294967296", "out of range"},
        {"pid", "\"1103\"", "not an integer"},
        {"pstart", "9223372036854775808", "out of range"},
        {"endtime", "1e19", "out of range"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.key);
        CAPTURE(c.value);
        auto item = nlohmann::json::parse(good);
        item[c.key] = nlohmann::json::parse(c.value);
        const std::string text = array_of(item.dump());
        CHECK_THROWS_WITH_AS(parse_task_list_json(text), doctest::Contains(c.key), TaskListError);
        CHECK_THROWS_WITH_AS(parse_task_list_json(text), doctest::Contains(c.words), TaskListError);
    }
    // An integral float in range is still a number PBS could have meant.
    auto item = nlohmann::json::parse(good);
    item["endtime"] = 1764335900.0;
    CHECK(parse_task_list_json(array_of(item.dump())).front().endtime == 1764335900);
}
