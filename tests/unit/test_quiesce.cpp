// pbs_quiesce's decisions: only datastores without any maintenance mode get ours; at restore time only our mode,
// found as we set it, is cleared; an admin's change is left alone.
#include "fixtures.hpp"
#include "pbs_patch/quiesce.hpp"

#include <doctest/doctest.h>

using namespace pbs_patch;

namespace {
Datastore store(std::string name, std::optional<std::string> mode = std::nullopt) {
    return {std::move(name), "/mnt/" + name, {}, std::move(mode), {}};
}
}  // namespace

TEST_CASE("quiesce plan: an admin's mode (any, even one PBS cannot parse) is left alone") {
    const auto plan = plan_quiesce(parse_datastore_list(fixture("datastore_list_quiesce.json")));
    REQUIRE(plan.size() == 4);
    CHECK_FALSE(plan[0].left_alone);
    CHECK_FALSE(plan[0].before);
    CHECK(plan[1].left_alone);
    CHECK(plan[1].before == "offline,message=disk swap by admin");
    CHECK(plan[2].left_alone);  // a mode an earlier run could not restore: not ours to clear now
    CHECK(plan[3].left_alone);
    for (const auto& e : plan) CHECK_FALSE(e.set);
}

TEST_CASE("quiesce restore: what to do with each datastore") {
    QuiesceEntry ours{"store1", std::nullopt, std::string("read-only,message=pbs_patch run"), false, false, std::nullopt};
    CHECK(restore_action(ours, {store("store1", "read-only,message=pbs_patch run")}) == RestoreAction::Clear);
    // the same mode written in another form is still ours
    CHECK(restore_action(ours, {store("store1", R"(type=read-only,message="pbs_patch run")")}) == RestoreAction::Clear);
    CHECK(restore_action(ours, {store("store1")}) == RestoreAction::AlreadyClear);
    CHECK(restore_action(ours, {store("store1", "offline,message=admin")}) == RestoreAction::Changed);
    CHECK(restore_action(ours, {store("store1", "read-only")}) == RestoreAction::Changed);
    CHECK(restore_action(ours, {store("other")}) == RestoreAction::Gone);
    QuiesceEntry alone{"store2", std::string("offline"), std::nullopt, false, true, std::nullopt};
    CHECK(restore_action(alone, {store("store2", "offline")}) == RestoreAction::Nothing);
    ours.restored = true;
    CHECK(restore_action(ours, {store("store1", "read-only,message=pbs_patch run")}) == RestoreAction::Nothing);
}

TEST_CASE("quiesce entries round-trip through the report") {
    QuiesceEntry e{"store1", std::nullopt, std::string("read-only"), true, false, std::nullopt};
    const auto j = e.to_json();
    CHECK(j["name"] == "store1");
    CHECK(j["before"].is_null());
    CHECK(j["set"] == "read-only");
    CHECK(j["restored"] == true);
    CHECK(j["left_alone"] == false);
    CHECK(j["error"].is_null());
    const auto back = QuiesceEntry::from_json(j);
    CHECK(back.set == "read-only");
    CHECK(back.restored);
    CHECK_THROWS(QuiesceEntry::from_json(nlohmann::json{{"set", "x"}}));
    CHECK_THROWS(QuiesceEntry::from_json(nlohmann::json{{"name", "a"}, {"set", 3}}));
    CHECK_THROWS(QuiesceEntry::from_json(nlohmann::json::array()));
}

TEST_CASE("quiesce: what is still busy, in words") {
    const auto running = parse_task_list_json(fixture("task_list_running.json"));
    REQUIRE_FALSE(running.empty());
    const auto busy = describe_busy(running, {{"store1", {0, 1}}, {"store2", {0, 0}}});
    REQUIRE(busy.size() == running.size() + 1);
    CHECK(busy[0].rfind("task " + running[0].worker_type, 0) == 0);
    CHECK(busy.back() == "datastore store1: 0 read and 1 write operation(s) active");
    CHECK(describe_busy({}, {{"store1", {0, 0}}}).empty());
}
