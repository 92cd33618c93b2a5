// Maintenance-mode property strings as PBS writes and parses them (proxmox-schema property_string.rs and
// ser/mod.rs: the default key `type` is written without its name, a value is quoted only when it holds `"`, `\`
// or a newline; a key given twice, e.g. by an unquoted message with a comma, makes the whole string unparseable).
#include "fixtures.hpp"
#include "pbs_patch/datastores.hpp"
#include "pbs_patch/maintenance_mode.hpp"

#include <doctest/doctest.h>

using namespace pbs_patch;

TEST_CASE("maintenance mode: the forms PBS writes and an admin may write") {
    auto m = parse_maintenance_mode("read-only");
    REQUIRE(m);
    CHECK(m->type == "read-only");
    CHECK_FALSE(m->message);
    m = parse_maintenance_mode("read-only,message=pbs_patch run 2026-12-01T08:30:00Z: upgrade and reboot");
    REQUIRE(m);
    CHECK(m->message == "pbs_patch run 2026-12-01T08:30:00Z: upgrade and reboot");
    m = parse_maintenance_mode(R"(type=offline,message="disk \"A\" \\ swap")");
    REQUIRE(m);
    CHECK(m->type == "offline");
    CHECK(m->message == R"(disk "A" \ swap)");
    m = parse_maintenance_mode(R"(message="back soon",type=offline)");
    REQUIRE(m);
    CHECK(m->type == "offline");
    m = parse_maintenance_mode("unmount");  // PBS 4
    REQUIRE(m);
    CHECK(m->type == "unmount");
}

TEST_CASE("maintenance mode: what PBS itself cannot parse") {
    // a comma in an unquoted message: the part after it is a second value for the default key `type`
    CHECK_FALSE(parse_maintenance_mode("offline,message=disk swap, back Friday"));
    CHECK_FALSE(parse_maintenance_mode(""));
    CHECK_FALSE(parse_maintenance_mode("message=x"));
    CHECK_FALSE(parse_maintenance_mode("type=offline,type=read-only"));
    CHECK_FALSE(parse_maintenance_mode("type=offline,reason=x"));
    CHECK_FALSE(parse_maintenance_mode(R"(type=offline,message="open)"));
    CHECK_FALSE(parse_maintenance_mode(R"(type=offline,message="a"b)"));
    CHECK_FALSE(parse_maintenance_mode(R"(type=offline,message="a\tb")"));
    CHECK_FALSE(parse_maintenance_mode("type=Offline"));
}

TEST_CASE("maintenance mode: what each type blocks") {
    CHECK(blocks_writes({"read-only", {}}));
    CHECK_FALSE(blocks_reads({"read-only", {}}));
    CHECK(blocks_writes({"offline", {}}));
    CHECK(blocks_reads({"offline", {}}));
    CHECK(blocks_reads({"delete", {}}));
}

TEST_CASE("maintenance mode: our message and argument") {
    bool changed = true;
    CHECK(sanitize_maintenance_message("pbs_patch run 2026-12-01T08:30:00Z: upgrade and reboot", &changed) ==
          "pbs_patch run 2026-12-01T08:30:00Z: upgrade and reboot");
    CHECK_FALSE(changed);
    CHECK(sanitize_maintenance_message("patch, \"reboot\" 100%\n", &changed) == "patch   reboot  100");
    CHECK(changed);
    const std::string long_text(70, 'x');
    CHECK(sanitize_maintenance_message(long_text, &changed).size() == 64);
    CHECK(changed);
    // a UTF-8 sequence is never cut in half at the 64-byte limit
    const std::string umlauts = std::string(63, 'a') + "\xc3\xa4" + "b";
    CHECK(sanitize_maintenance_message(umlauts) == std::string(63, 'a'));
    CHECK(maintenance_mode_argument("read-only", "pbs_patch run") == R"(type=read-only,message="pbs_patch run")");
    CHECK(maintenance_mode_argument("offline", "") == "type=offline");
    // what we hand to the CLI parses back to what we meant
    const auto back = parse_maintenance_mode(maintenance_mode_argument("offline", "pbs_patch: x y"));
    REQUIRE(back);
    CHECK(same_maintenance(*back, {"offline", std::string("pbs_patch: x y")}));
    CHECK(same_maintenance({"offline", std::nullopt}, {"offline", std::string()}));
    CHECK_FALSE(same_maintenance({"offline", std::nullopt}, {"read-only", std::nullopt}));
}

TEST_CASE("maintenance mode: datastore list with the modes PBS stores") {
    const auto stores = parse_datastore_list(fixture("datastore_list_quiesce.json"));
    REQUIRE(stores.size() == 4);
    CHECK_FALSE(stores[0].maintenance_mode);
    REQUIRE(parse_maintenance_mode(*stores[1].maintenance_mode));
    CHECK(parse_maintenance_mode(*stores[1].maintenance_mode)->message == "disk swap by admin");
    CHECK_FALSE(parse_maintenance_mode(*stores[3].maintenance_mode));
    // the older fixture's admin-written quoted form still parses
    const auto old = parse_datastore_list(fixture("datastore_list.json"));
    CHECK(parse_maintenance_mode(*old[1].maintenance_mode)->message == "disk replacement, back Friday");
}

TEST_CASE("maintenance mode: stored the way PBS's serializer writes it") {
    CHECK(format_maintenance_mode({"read-only", std::nullopt}) == "read-only");
    CHECK(format_maintenance_mode({"offline", std::string("disk swap by admin")}) == "offline,message=disk swap by admin");
    CHECK(format_maintenance_mode({"offline", std::string("a \"b\" \\ c")}) == R"(offline,message="a \"b\" \\ c")");
    const auto back = parse_maintenance_mode(format_maintenance_mode({"offline", std::string("a \"b\" \\ c")}));
    REQUIRE(back);
    CHECK(back->message == "a \"b\" \\ c");
}
